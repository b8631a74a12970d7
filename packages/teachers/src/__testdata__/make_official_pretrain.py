"""Write official_pretrain_tiny.pth: a checkpoint laid out as OpenGVLab/VideoMAEv2 `utils.save_model` writes it
({'model': state_dict, 'optimizer': ..., 'epoch': ..., 'scaler': ..., 'args': argparse.Namespace}), with the
state dict of the official PretrainVisionTransformer used for the shared fixture
`fixtures-pretrain/videomae_pretrain/tube05_raw_layerscale_16x24` (its weights file, official names).

Run with torch + safetensors:  python make_official_pretrain.py ../../../../../shared/fixtures-pretrain
"""
import argparse
import collections
import sys

import torch
from safetensors.torch import load_file

src = sys.argv[1] + '/videomae_pretrain/tube05_raw_layerscale_16x24.weights.safetensors'
weights = load_file(src)
# the official state-dict order: mask_token, encoder.*, decoder.*, encoder_to_decoder
sd = collections.OrderedDict((k, weights[k].contiguous()) for k in weights)
opt_state = {0: {'step': torch.tensor(3.0), 'exp_avg': torch.zeros(1, 1, 8), 'exp_avg_sq': torch.zeros(1, 1, 8)}}
args = argparse.Namespace(model='pretrain_videomae_tiny', mask_type='tube', mask_ratio=0.5, input_size=(16, 24), num_frames=6)
torch.save({'model': sd, 'optimizer': {'state': opt_state, 'param_groups': [{'lr': 1e-3, 'params': [0]}]}, 'epoch': 3, 'scaler': {}, 'args': args},
           'official_pretrain_tiny.pth')

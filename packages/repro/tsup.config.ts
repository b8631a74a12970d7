import { vrepaTsup } from '../../tsup.shared.ts';

export default vrepaTsup();

// The chart renderer moved to @vrepa/core (training loops draw loss curves with it); re-exported here.
export { vegaLiteToPng, vegaLiteToSvg } from '@vrepa/core';

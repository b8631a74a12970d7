import { vrepaTsupWithBrowser } from '../../tsup.shared.ts';

export default vrepaTsupWithBrowser();

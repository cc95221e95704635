"""Make sigma-cli find this plugin under an editable install: `python -m sigma.pipelines.kubesigma._devinstall`.

sigma-cli lists plugins with `pkgutil.iter_modules(sigma.pipelines.__path__)`. setuptools' editable
finder (needed because our role folders install as `kubesigma.<role>`) imports
`sigma.pipelines.kubesigma` fine but cannot list it, so sigma-cli never sees it. `editable_mode=compat`
lists it but breaks `import kubesigma.*`; `editable_mode=strict` works but links files one by one.
This adds a folder holding only `sigma/pipelines/kubesigma` (a symlink to the repository's folder,
so new files show up) and a `.pth` naming it in the environment's site-packages. Idempotent.
"""

from __future__ import annotations

import site
import sys
import sysconfig
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent


def install(prefix: Path | None = None) -> Path:
    purelib = Path(sysconfig.get_paths()["purelib"]) if prefix is None else prefix
    root = purelib / "kubesigma_sigma_plugin"
    link = root / "sigma" / "pipelines" / "kubesigma"
    link.parent.mkdir(parents=True, exist_ok=True)
    if (link.is_symlink() or link.exists()) and link.resolve() != PLUGIN_DIR:
        link.unlink()
    if not link.exists():
        link.symlink_to(PLUGIN_DIR, target_is_directory=True)
    (purelib / "kubesigma_sigma_plugin.pth").write_text(f"{root}\n", encoding="utf-8")
    return root


if __name__ == "__main__":
    where = install()
    site.addsitedir(str(where.parent))
    print(f"sigma-cli plugin path: {where} (listed in kubesigma_sigma_plugin.pth)", file=sys.stderr)

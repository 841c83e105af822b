"""Test-wide settings: every test and every nbval kernel runs at smoke scale, offline, with progress bars off.

Set here (before any kernel starts) so that ``pytest`` and ``pytest --nbval notebooks/`` both inherit them.
Where the real data sits beside this checkout (``../shared/data``), the notebooks' data root is a folder of
links to it: Omniglot whole, Mini-ImageNet as its 20-images-per-class fixture (smoke runs need no more).
"""
import os
import tempfile
from pathlib import Path

os.environ.setdefault("REPTILE_EDU_SMOKE", "1")
os.environ.setdefault("REPTILE_EDU_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

SHARED_DATA = Path(__file__).resolve().parent.parent / "shared" / "data"
if "REPTILE_EDU_DATA" not in os.environ and SHARED_DATA.is_dir():
    root = Path(tempfile.mkdtemp(prefix="reptile_edu-data-"))
    if (SHARED_DATA / "omniglot").is_dir():
        (root / "omniglot").symlink_to(SHARED_DATA / "omniglot")
    fixture = SHARED_DATA / "miniimagenet" / "mini_imagenet_fixture_20per_class.zip"
    if fixture.is_file():
        (root / "miniimagenet").mkdir()
        (root / "miniimagenet" / fixture.name).symlink_to(fixture)
    os.environ["REPTILE_EDU_DATA"] = str(root)

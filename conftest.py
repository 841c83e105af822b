"""Test-wide settings: every test and every nbval kernel runs at smoke scale, offline, with progress bars off.

Set here (before any kernel starts) so that ``pytest`` and ``pytest --nbval notebooks/`` both inherit them.
Where the real data sits beside this checkout (``../shared/data``), the data root (``$REPTILE_EDU_DATA``) is a
folder of links to it: Omniglot whole; Mini-ImageNet as its 20-images-per-class fixture (all the notebooks'
smoke runs need), with the whole set in ``miniimagenet/full/``, which the loaders do not look into (a folder that
is neither a split nor a zip), for the tests that need all of it (``real_data`` in tests/conftest.py). Tests read
real data from the data root only, as users' code does.
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
    mini = SHARED_DATA / "miniimagenet"
    for link in (mini / "mini_imagenet_fixture_20per_class.zip", mini / "full"):
        if link.exists():
            (root / "miniimagenet").mkdir(exist_ok=True)
            (root / "miniimagenet" / link.name).symlink_to(link)
    os.environ["REPTILE_EDU_DATA"] = str(root)

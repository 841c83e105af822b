"""Test-wide settings: every test and every nbval kernel runs at smoke scale with progress bars off.

Set here (before any kernel starts) so that ``pytest`` and ``pytest --nbval notebooks/`` both inherit them.
"""
import os

os.environ.setdefault("REPTILE_EDU_SMOKE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

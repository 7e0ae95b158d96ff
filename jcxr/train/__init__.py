"""jcxr.train: the resolution sweep. ``python -m jcxr.train --config configs/NAME.py``."""

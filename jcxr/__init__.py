"""jcxr: how does input image resolution change what a chest-radiograph CNN can detect?

Importing ``jcxr`` imports nothing heavy: ``jcxr.stats`` needs only numpy and scipy.
"""

__version__ = "0.1.0"

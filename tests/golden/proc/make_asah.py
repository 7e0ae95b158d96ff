"""Write ``asah.csv`` from pROC's ``data/aSAH.RData`` (Turck et al. 2010; 113 patients with
aneurysmal subarachnoid haemorrhage), the data set of pROC's documented examples and its
power.roc.test tests, whose printed values the jcxr.stats tests check against.

Needs pyreadr (not a jcxr dependency), run once in a throwaway environment::

    python3 -m venv /tmp/rd && /tmp/rd/bin/pip install pyreadr
    git show HEAD:data/aSAH.RData > /tmp/aSAH.RData      # in a clone of xrobin/pROC
    /tmp/rd/bin/python tests/golden/proc/make_asah.py /tmp/aSAH.RData

``outcome`` is 1 for "Poor" (pROC's cases) and 0 for "Good" (controls); ``wfns`` is the
ordered factor's level 1-5, as pROC ranks it.
"""

import sys
from pathlib import Path

import pyreadr

frame = pyreadr.read_r(sys.argv[1])["aSAH"]
out = frame[["outcome", "s100b", "ndka", "wfns"]].copy()
out["outcome"] = (out["outcome"] == "Poor").astype(int)
out["wfns"] = out["wfns"].astype(int)
out.to_csv(Path(__file__).with_name("asah.csv"), index=False)

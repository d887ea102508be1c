"""The lguest Host ("lg.ko"): one module per file of lguest's drivers/lguest.

Read in this order: lg.py (struct lguest, struct lg_cpu), core.py (the Host
and run_guest), x86_core.py (its x86 half: the Host's tables, the Switcher's
mapping, the trip through it), lguest_user.py (/dev/lguest), hypercalls.py, interrupts_and_traps.py,
page_tables.py, segments.py, io.py, cost.py (what Host work costs), and
recovery.py (what lguestsim adds: a failed world switch undone).
"""

from .core import HOST_AREA, Host, Process
from .lg import LHREQ_BREAK, LHREQ_GETDMA, LHREQ_INITIALIZE, LHREQ_IRQ
from .lguest_user import LguestFile

__all__ = ["HOST_AREA", "Host", "Process", "LguestFile", "LHREQ_BREAK", "LHREQ_GETDMA",
           "LHREQ_INITIALIZE", "LHREQ_IRQ"]

"""Control transfer within the segment: jmp, jcc, loop, jcxz, call and ret.

The 386 manual's near transfers, written inline by translate.py; each ends
its block, leaving the next EIP in `nxt`.  Outside a flat code segment the
target is checked against CS's limit (#GP) before anything changes.  Far
transfers (ljmp, lcall, lret, int, iret) go through gates, tasks and
privilege checks and live in system.py, call_gates.py and interrupts.py.
"""

from __future__ import annotations

from . import flags as F
from . import timing
from .decode import Insn
from .emitter import Emitter
from .faults import GP


def jump(e: Emitter, target: str, taken: bool = True) -> None:
    mask = "0xffffffff" if e.code32 else "0xffff"
    if not e.cs_flat:
        t = e.tmp("t")
        e.emit(f"{t} = {target} & {mask}")
        e.may_fault()
        e.emit(f"if {t} > cpu.sregs[1].limit: raise CPUFault({GP}, 0)")
        target = t
    e.emit(f"nxt = {target}")
    if taken:
        e.emit(f"tk += {timing.BRANCH_TAKEN}")


def conditional(e: Emitter, c: str, target: int, insn: Insn) -> None:
    e.emit(f"if {c}:")
    e.ind += 1
    jump(e, hex(target))
    e.ind -= 1
    e.emit("else:")
    e.emit(f"    nxt = {e.next_eip(insn):#x}")
    e.end_eip = "nxt"


def emit_jmp(e: Emitter, insn: Insn) -> None:
    op = insn.operands[0]
    if op[0] == "j":
        jump(e, hex(op[2]))
    else:
        v = e.tmp("v")
        jump(e, e.value(insn, op, v))
    e.end_eip = "nxt"


def emit_jcc(e: Emitter, insn: Insn) -> None:
    c = e.cond(insn.cc)
    conditional(e, c, insn.operands[0][2], insn)


def emit_loop(e: Emitter, insn: Insn) -> None:
    m = insn.mnemonic
    cx = e.tmp("cx")
    if insn.addr32:
        e.emit(f"{cx} = (ecx - 1) & 0xffffffff")
        c = f"{cx} != 0"
    else:
        e.emit(f"{cx} = (ecx & 0xffff0000) | ((ecx - 1) & 0xffff)")
        c = f"{cx} & 0xffff != 0"
    if m == "loope":
        c = f"{c} and {e.cond(4)}"
    elif m == "loopne":
        c = f"{c} and {e.cond(5)}"
    conditional(e, c, insn.operands[0][2], insn)
    e.emit(f"ecx = {cx}")


def emit_jcxz(e: Emitter, insn: Insn) -> None:
    cnt = "ecx" if insn.addr32 else "(ecx & 0xffff)"
    conditional(e, f"{cnt} == 0", insn.operands[0][2], insn)


def emit_call(e: Emitter, insn: Insn) -> None:
    op = insn.operands[0]
    size = 32 if insn.op32 else 16
    if op[0] == "j":
        target = hex(op[2])
    else:
        v = e.tmp("v")
        target = e.value(insn, op, v)
        if target != v:
            e.emit(f"{v} = {target}")
            target = v
    ret = f"{e.next_eip(insn):#x}"
    # the target is checked against the CS limit before anything is pushed
    mask = "0xffffffff" if e.code32 else "0xffff"
    t = e.tmp("t")
    e.emit(f"{t} = {target} & {mask}")
    if not e.cs_flat:
        e.may_fault()
        e.emit(f"if {t} > cpu.sregs[1].limit: raise CPUFault({GP}, 0)")
    e.push(size, ret)
    e.emit(f"nxt = {t}")
    e.emit(f"tk += {timing.BRANCH_TAKEN}")
    e.end_eip = "nxt"


def emit_ret(e: Emitter, insn: Insn) -> None:
    size = 32 if insn.op32 else 16
    v = e.tmp("v")
    sp = e.pop_value(size, v)
    if insn.operands:
        e.emit(f"{sp} = ({sp} + {insn.operands[0][2]}) & {e.sp_mask()}")
    if not e.cs_flat:
        e.may_fault()
        e.emit(f"if {v} > cpu.sregs[1].limit: raise CPUFault({GP}, 0)")
    e.commit_sp(sp)
    e.emit(f"nxt = {v}")
    e.emit(f"tk += {timing.BRANCH_TAKEN}")
    e.end_eip = "nxt"


EMIT = {
    "jmp": emit_jmp, "call": emit_call, "ret": emit_ret, "loop": emit_loop,
    "loope": emit_loop, "loopne": emit_loop, "jcxz": emit_jcxz, "jecxz": emit_jcxz,
}
EMIT.update({"j" + c: emit_jcc for c in F.CC_NAMES})

# Every member is written inline: no helper ends a block for this family.
HELPERS: dict = {}

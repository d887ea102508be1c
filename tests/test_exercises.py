"""Exercises: each student's variant is stable, students differ, and right answers pass.

Every exercise of every chapter is answered here the way a student answers it:
by moving a Session to the moment the question names (stepping, ``step_to``,
``run_to``, ``back``) and reading the value a view shows or the session
holds, with code written for the test, never the checker's own function.  The
answer must be judged right for each of a dozen student names, and a wrong
answer of the right type (the value next to it) must be judged wrong.

Answers depend only on a student's variant (a memory size, a count...), so
each variant is worked out once.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from lguestsim import views
from lguestsim.exercises import Exercises
from lguestsim.exercises.drivers import DriversExercises
from lguestsim.exercises.guest import GuestExercises
from lguestsim.exercises.host import HostExercises
from lguestsim.exercises.launcher import LauncherExercises
from lguestsim.exercises.mastery import MasteryExercises
from lguestsim.exercises.preparation import PreparationExercises
from lguestsim.exercises.switcher import STEPS, SwitcherExercises, switcher_listing
from lguestsim.exercises.virtio import VirtioExercises
from lguestsim.host.core import HOST_RETURN
from lguestsim.host.lg import HCALL_NAMES
from lguestsim.pagewalk import guest_walk
from lguestsim.session import Session, TinyGuest, shared_key

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "notebooks" / "src"
STUDENTS = ("ada", "alan", "grace", "edsger", "barbara", "donald", "frances", "ken",
            "margaret", "rusty", "linus", "")
PO = 0xC0000000
CALL = {name: number for number, name in HCALL_NAMES.items()}


def notebook_strings(stem: str) -> dict[str, str]:
    """The string constants a chapter's notebook defines (its tiny Guests' sources)."""
    tree = ast.parse((SRC / f"{stem}.py").read_text())
    return {n.targets[0].id: n.value.value for n in tree.body
            if isinstance(n, ast.Assign) and len(n.targets) == 1
            and isinstance(n.targets[0], ast.Name) and isinstance(n.value, ast.Constant)
            and isinstance(n.value.value, str)}


def shown(html: str, reg: str) -> int:
    """The value of register ``reg`` as the registers view shows it (hex)."""
    m = re.search(rf'data-reg="{re.escape(reg)}"[^>]*>(?:base )?([0-9a-f]{{4,8}})', html)
    assert m, f"the registers view shows no {reg}"
    return int(m.group(1), 16)


def finished() -> Session:
    s = Session.boot()
    s.finish()
    return s


boot_finished = functools.lru_cache(maxsize=1)(finished)


def judge(ex: Exercises, number: int, right, wrong, *inputs) -> None:
    fb = ex.check(number, right, *inputs)
    assert fb.ok, f"{ex.chapter} {number} for {ex.student!r}: {right!r} judged {fb}"
    fb = ex.check(number, wrong, *inputs)
    assert fb.status == "wrong", f"{ex.chapter} {number}: {wrong!r} judged {fb}"


# -- Preparation -------------------------------------------------------------

@functools.cache
def prep_count(name: str) -> int:
    return sum(1 for e in boot_finished().trace.events
               if e.kind == "hypercall" and e.data["call"] == CALL[name])


@functools.cache
def prep_first_cycle(kind: str) -> int:
    return next(e.cycle for e in boot_finished().trace.events if e.kind == kind)


@functools.cache
def prep_steps() -> int:
    s = Session.boot()
    taken = 0
    while not s.trace.of("hypercall"):
        s.step()
        taken += 1
    return taken


@pytest.mark.parametrize("student", STUDENTS)
def test_preparation(student):
    ex = PreparationExercises(student)
    judge(ex, 1, prep_count(ex.name), prep_count(ex.name) + 1)
    judge(ex, 2, prep_first_cycle(ex.kind), prep_first_cycle(ex.kind) - 1)
    judge(ex, 3, prep_steps(), prep_steps() - 1)


# -- Guest -------------------------------------------------------------------

@functools.cache
def guest_irq_enabled(k: int) -> int:
    s = Session.boot()
    s.step_until(lambda t: len(t.trace.of("hypercall")) >= k)
    ld = s.run.symbols.address("lguest_data") - PO
    return s.run.process.read32(ld)


@functools.cache
def guest_syscall(n: int) -> int:
    s = Session.boot()
    for _ in range(n):
        s.run_to("system_call")
    return shown(views.RegistersView(s).html(), "eax")


@functools.cache
def guest_ring() -> int:
    s = Session.boot()
    s.step_to("hypercall", match=lambda e: e.name == "FLUSH_ASYNC")
    s.back(1)
    return int(re.search(r"(\d+) waiting", views.LguestDataView(s).html()).group(1))


@pytest.mark.parametrize("student", STUDENTS)
def test_guest(student):
    ex = GuestExercises(student)
    irq = guest_irq_enabled(ex.k)
    judge(ex, 1, irq, 0x200 if irq == 0 else 0)
    judge(ex, 2, guest_syscall(ex.n), guest_syscall(ex.n) + 1)
    judge(ex, 3, guest_ring(), guest_ring() + 1)


# -- Drivers -----------------------------------------------------------------

def pair_builder():
    src = notebook_strings("03_drivers")
    key = shared_key()

    def pair(length=16):
        return Session([TinyGuest(src["RECEIVER"].format(key=key, length=length), share=True,
                                  name="receiver"),
                        TinyGuest(src["SENDER"].format(key=key), share=True, name="sender")])
    return pair


PAIR = pair_builder()


@functools.cache
def drivers_used(length: int) -> int:
    t = PAIR(length)
    t.finish()
    rx = t.runs[0].program.symbols["rx"] - PO
    return t.runs[0].process.read32(rx)


@functools.cache
def drivers_status() -> int:
    s = boot_finished()
    return s.run.process.read16(s.run.layout.devices.descs + 4)


@functools.cache
def drivers_sends() -> int:
    return sum(1 for e in boot_finished().trace.events
               if e.kind == "hypercall" and e.data["call"] == 13)


@pytest.mark.parametrize("student", STUDENTS)
def test_drivers(student):
    ex = DriversExercises(student)
    used = drivers_used(ex.length)
    assert used == min(ex.length, 12)          # "hello, world" is 12 bytes
    judge(ex, 1, used, used + 1, PAIR)
    judge(ex, 2, drivers_status(), drivers_status() ^ 4)
    judge(ex, 3, drivers_sends(), drivers_sends() + 1)


# -- Launcher ----------------------------------------------------------------

@functools.cache
def launcher_answers(mem_mb: int) -> tuple[int, int, int]:
    s = Session.boot(mem_mb=mem_mb)
    pfnlimit = s.run.layout.pfnlimit
    s.step_to("switch")
    pgdir = guest_walk(s, s.run, s.lg.regs.eip)["gpgdir"]
    s.finish()
    first = s.run.console.chunks[0][1].encode("latin-1")
    return pgdir, pfnlimit, len(first)


@pytest.mark.parametrize("student", STUDENTS)
def test_launcher(student):
    ex = LauncherExercises(student)
    pgdir, pfnlimit, first = launcher_answers(ex.mem_mb)
    assert pgdir < ex.mem_mb << 20 and pfnlimit > (ex.mem_mb << 20) // 4096
    judge(ex, 1, hex(pgdir), pgdir + 0x1000)         # an address, as a student copies it
    judge(ex, 2, pfnlimit, pfnlimit - 1)
    judge(ex, 3, first, first + 1)


# -- Host --------------------------------------------------------------------

@functools.cache
def host_shadow_page(k: int) -> int:
    s = Session.boot()
    s.step_until(lambda t: len(t.trace.of("pagefault")) >= k)
    vaddr = s.trace.of("pagefault")[k - 1].vaddr
    lg = s.lg
    spde = s.mem.read32(lg.pgdirs[lg.pgdidx].page + (vaddr >> 22) * 4)
    spte = s.mem.read32((spde & ~0xFFF) + ((vaddr >> 12) & 0x3FF) * 4)
    assert spte & 1
    return spte & ~0xFFF


@functools.cache
def host_reason(n: int) -> str:
    t = Session.tiny(f"HCALL 1, lguest_data-PO\nHCALL {n}\n")
    t.finish()
    return t.trace.of("kill")[0].reason


@functools.cache
def host_handled() -> int:
    count = 0
    for e in boot_finished().trace.events:
        if e.kind == "trap" and e.data.get("reflected"):
            return count
        count += e.kind == "pagefault"
    raise AssertionError("the Guest never had a fault reflected")


@pytest.mark.parametrize("student", STUDENTS)
def test_host(student):
    ex = HostExercises(student)
    page = host_shadow_page(ex.k)
    judge(ex, 1, page, page + 0x1000)
    for n in (ex.bad, ex.unknown):      # both really are unknown: the Guest is killed
        assert n not in HCALL_NAMES and host_reason(n) == f"Bad hypercall {n}"
    judge(ex, 2, host_reason(ex.unknown), f"Bad hypercall {ex.unknown + 1}")
    judge(ex, 3, host_handled(), host_handled() + 1)


# -- Switcher ----------------------------------------------------------------

@functools.cache
def switcher_after(what: str, reg: str) -> int:
    s = Session.boot()
    s.step_to("switch")
    while True:                     # the step button, watching the code view
        ran = s.next_instruction()
        s.step()
        if ran == what:
            break
        assert s.where == "switcher", f"{what!r} never ran in switch_to_guest"
    html = views.RegistersView(s).html()
    return shown(html, {"idtr base": "idtr", "gdtr base": "gdtr"}.get(reg, reg))


@functools.cache
def switcher_count() -> int:
    s = Session.boot()
    s.step_to("switch")
    n = 0
    while True:
        ran = s.next_instruction()
        s.step()
        n += 1
        if ran.startswith("iret"):
            return n


@functools.cache
def switcher_first_trap() -> tuple[int, int]:
    s = Session.boot()
    s.to_guest()
    s.to_host()                      # the button "back to the Host"
    vector = int(re.match(r"trap stub (\d+)", s.describe(s.cpu.eip)).group(1))
    s.step_until(lambda t: t.cpu.eip == HOST_RETURN)
    html = views.RegistersView(s).html()
    assert shown(html, "guest.trapnum") == vector
    return vector, shown(html, "guest.errcode")


@pytest.mark.parametrize("student", STUDENTS)
def test_switcher(student):
    ex = SwitcherExercises(student)
    value = switcher_after(ex.what, ex.reg)
    judge(ex, 1, hex(value), value + 4)
    judge(ex, 2, switcher_count(), switcher_count() - 1)
    vector, code = switcher_first_trap()
    judge(ex, 3, (vector, code), (vector, code + 2))
    judge(ex, 3, [vector, code], (256, code))


def test_every_switcher_step_asked_about_is_one_moment():
    s = Session.boot()
    s.step_to("switch")
    texts = [t for _, _, t in switcher_listing(s)]
    for what, _ in STEPS:
        assert texts.count(what) == 1, what
    assert texts.count("ltrw %dx") > 1         # why `ltr` is not asked about


# -- Mastery -----------------------------------------------------------------

MASTERY = notebook_strings("08_mastery")


def counted(session: Session) -> tuple[int, list]:
    session.run_to("begin")
    cycles, first = session.cpu.cycles, len(session.trace.events)
    session.run_to("end")
    return session.cpu.cycles - cycles, session.trace.events[first:]


@functools.cache
def mastery_switches(n: int) -> int:
    s = Session.tiny(MASTERY["SYSCALLS"].format(n=n), direct_traps=False)
    return sum(1 for e in counted(s)[1] if e.kind == "switch")


@functools.cache
def mastery_faults(slots: int, seed: int) -> int:
    s = Session.tiny(MASTERY["SPACES"].format(k=6, rounds=6, mem=8 << 20), pgdir_cache=slots,
                     seed=seed)
    return sum(1 for e in counted(s)[1] if e.kind == "pagefault")


@functools.cache
def mastery_cycles() -> int:
    return counted(Session.tiny(MASTERY["SYNC"].format(n=32)))[0] // 32


@pytest.mark.parametrize("student", STUDENTS)
def test_mastery(student):
    ex = MasteryExercises(student)
    switches = mastery_switches(ex.n)
    assert switches >= 2 * ex.n          # a round trip (one switch each way) per call
    judge(ex, 1, switches, switches - 2, MASTERY["SYSCALLS"])
    judge(ex, 2, mastery_faults(ex.slots, ex.seed), mastery_faults(ex.slots, ex.seed) + 1,
          MASTERY["SPACES"])
    judge(ex, 3, mastery_cycles(), mastery_cycles() + 1, MASTERY["SYNC"])


# -- Virtio ------------------------------------------------------------------

@functools.cache
def virtio_stepped(kind: str, upto: int) -> list:
    """What a student collects stepping a virtio session on to its ``upto``-th
    ``kind`` event, noting each one the session passes (one step of the
    Launcher can hold two, taking a chain and giving it back)."""
    s = Session.boot(virtio=True)
    seen = []

    def note(event) -> bool:
        seen.append(event)
        return len(seen) >= upto
    s.step_to(kind, match=note)
    return seen


@functools.cache
def virtio_counted() -> dict[str, int]:
    s = Session.boot(virtio=True)
    s.finish()
    return {kind: sum(1 for e in s.trace.events if e.kind == kind)
            for kind in ("notify", "vring", "interrupt", "hypercall")}


@pytest.mark.parametrize("student", STUDENTS)
def test_virtio(student):
    ex = VirtioExercises(student)
    addr = int(virtio_stepped("notify", 16)[ex.notify - 1].data["addr"])
    judge(ex, 1, hex(addr), addr + 4)          # as the view shows it, in hex
    idx = int(virtio_stepped("vring", 16)[ex.vring - 1].data["idx"])
    judge(ex, 2, idx, idx + 1)
    count = virtio_counted()[ex.kind]
    judge(ex, 3, count, count - 1)


# -- all chapters ------------------------------------------------------------

CHAPTERS = (PreparationExercises, GuestExercises, DriversExercises, LauncherExercises,
            HostExercises, SwitcherExercises, VirtioExercises, MasteryExercises)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.chapter)
def test_students_get_different_variants_and_keep_theirs(chapter):
    def variant(name):
        ex = chapter(name)
        return tuple(sorted((k, v) for k, v in vars(ex).items()
                            if k not in ("random", "results", "student", "seed")))
    assert variant("ada") == variant("ada")
    assert len({variant(n) for n in STUDENTS}) > 1
    assert len(chapter("ada").questions()) == 3


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.chapter)
def test_notebooks_only_call_the_checkers(chapter):
    """Reading a notebook must not give the answers away: its exercise section
    defines nothing and computes nothing, it calls the chapter's checker."""
    stem = next(p.stem for p in SRC.glob("*.py") if p.stem.split("_", 1)[1] == chapter.chapter)
    text = (SRC / f"{stem}.py").read_text()
    section = text[text.index("# ## Exercises"):]
    assert f"{chapter.__name__}(STUDENT)" in text
    assert "def " not in section and "Session" not in section and "lambda" not in section
    inputs = {"drivers": {1: "pair"}, "mastery": {1: "SYSCALLS", 2: "SPACES", 3: "SYNC"}}
    for k in (1, 2, 3):
        given = inputs.get(chapter.chapter, {}).get(k)
        assert f"display(ex.check({k}, ANSWER_{k}{', ' + given if given else ''}))" in section


def test_a_question_without_its_input_says_what_it_needs():
    ex = MasteryExercises("ada")
    with pytest.raises(TypeError, match="SYSCALLS"):
        ex.check(1, 5)
    with pytest.raises(ValueError, match="1 to 3"):
        ex.check(4, 5)
    assert ex.check(1, None).status == "waiting"        # nothing computed before an answer


def test_variants_are_stable_per_student_and_differ_between_students():
    draws = lambda name: [Exercises("host", name).choice(range(1000)) for _ in range(3)]  # noqa: E731
    assert draws("ada") == draws("ada")
    picks = {tuple(Exercises("host", n).randint(0, 10**9) for _ in range(2)) for n in
             ("ada", "alan", "grace", "")}
    assert len(picks) == 4
    assert Exercises("host", "ada").seed != Exercises("switcher", "ada").seed


def test_answers_are_judged_without_raising():
    ex = Exercises("launcher", "ada")
    assert ex.check(1, None, 5).status == "waiting"
    assert ex.check(2, 5, 5).ok
    assert ex.check(3, "0x10", 16).ok                  # hex text for a number
    assert ex.check(4, [1, 2], (1, 2)).ok
    assert ex.check(5, "Bad Hypercall 7 ", "bad hypercall 7").ok
    wrong = ex.check(6, 4, lambda: 5, hint="count again")
    assert wrong.status == "wrong" and "count again" in wrong.message
    assert "Exercise 6" in wrong._repr_html_()
    assert not ex.check(7, "x", 5).ok
    summary = ex.summary()
    assert "4 of 7" in summary.message


def test_the_mastery_checker_measures_the_chapters_own_experiment():
    from lguestsim.exercises import mastery
    text = (SRC / "08_mastery.py").read_text()
    assert re.search(rf"^CALLS = {mastery.CALLS}$", text, re.M)
    k, rounds, mem = re.search(r"^K, ROUNDS, MEM = (.+)$", text, re.M).group(1).split(", ")
    assert (int(k), int(rounds), mem) == (mastery.K, mastery.ROUNDS, f"{mastery.MEM >> 20} << 20")

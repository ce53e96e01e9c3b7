"""Importing tvm_sched is cheap: no torch, OR-Tools or TVM, no global RNG seeding."""

import subprocess
import sys


def test_import_has_no_heavy_side_effects():
    code = (
        "import sys, random, numpy as np\n"
        "state = random.getstate(); np_state = np.random.get_state()[1].copy()\n"
        "import tvm_sched, tvm_sched.graph, tvm_sched.cost, tvm_sched.solvers, "
        "tvm_sched.schedule, tvm_sched.datasets\n"
        "from tvm_sched.solvers import get_solver; get_solver('list')\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'ortools', 'tvm')]\n"
        "assert not heavy, heavy\n"
        "assert random.getstate() == state\n"
        "assert (np.random.get_state()[1] == np_state).all()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cpsat_is_imported_only_when_asked_for():
    code = (
        "import sys\n"
        "from tvm_sched.solvers import get_solver\n"
        "get_solver('cpsat')\n"
        "assert 'ortools' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)



def test_exact_packing_leaves_ctrl_c_to_python():
    # CP-SAT's own SIGINT handler resets SIGINT to the default action when a solve ends: a later
    # Ctrl-C (or a test's SIGINT) then killed the whole process instead of raising
    # KeyboardInterrupt. Run in a child process: the failure mode is death by signal.
    import subprocess
    import sys

    code = (
        "import signal, numpy as np\n"
        "from tvm_sched.memory import pack\n"
        "pack([64, 128, 192], np.ones((3, 3), dtype=bool), method='exact', budget=1.0)\n"
        "try:\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "except KeyboardInterrupt:\n"
        "    print('KeyboardInterrupt')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-500:])
    assert proc.stdout.strip() == "KeyboardInterrupt"

"""``python -m nlu.serve run ...``: the ``rasa`` command, with the HTTP API's ``--auth-token``
taken from ``RASA_TOKEN`` in the environment instead of the command line, where every local
user (``ps``, ``/proc/<pid>/cmdline``) and ``docker inspect`` could read it.

``rasa run`` refuses to start without the token: it protects the HTTP API (``/model/parse``,
``/conversations/...``), and the REST channel (nlu/rest_channel.py) and the action server
check the same secret. ``run`` loads the TensorFlow models without Rasa's training step
(nlu/fast_load.py), reads button payloads without the NLU pipeline (nlu/button_parse.py),
checks the action server's answers with schemas compiled once (nlu/repeated_work.py), keeps
its connections alive (nlu/keep_alive.py) and parses a few messages before it is ready
(nlu/warm_up.py): bench/README.md, what each saves. ``train`` trains in less time
(nlu/fast_train.py); other commands (``test``...) pass through unchanged.
With ``BARRI_ENGINE_PROFILE=<file>`` the whole run is profiled (cProfile) into that file when
the engine stops (bench/README.md: where the engine's time goes). Runs inside the engine
(Python 3.10).
"""

from __future__ import annotations

import os
import sys

from nlu.rest_channel import MIN_TOKEN_LENGTH, acceptable_token


def main() -> None:
    if sys.argv[1:2] == ["run"]:
        token = os.environ.get("RASA_TOKEN", "")
        if not acceptable_token(token):
            sys.exit(f"nlu.serve: RASA_TOKEN must be set to a random value of at least {MIN_TOKEN_LENGTH} characters")
        if any(arg == "-t" or arg.startswith("--auth-token") for arg in sys.argv):
            sys.exit("nlu.serve: give the token in RASA_TOKEN, not on the command line")
        # one argument: a token starting with "-" (token_urlsafe gives one in 64) read as an option
        sys.argv.append(f"--auth-token={token}")  # this process's argv only: /proc shows the original
        from nlu import button_parse, fast_load, keep_alive, repeated_work, warm_up

        fast_load.install()  # DIET and the ResponseSelector load without a training step
        button_parse.install()  # a button's payload is read without running the NLU pipeline
        repeated_work.install()  # schemas compiled and event classes found once, not every turn
        keep_alive.install()  # the action server and its NLG on kept-alive connections
        warm_up.install()  # TensorFlow's second tracing at start, not in a citizen's turn
    elif sys.argv[1:2] == ["train"]:
        from nlu import fast_train

        fast_train.install()  # batches built in one step and by length; no hashing for an off cache
    from rasa.__main__ import main as rasa_main

    profile_to = os.environ.get("BARRI_ENGINE_PROFILE")
    if not profile_to:
        rasa_main()
        return
    import cProfile

    profiler = cProfile.Profile()
    try:
        profiler.runcall(rasa_main)
    finally:
        profiler.dump_stats(profile_to)


if __name__ == "__main__":
    main()

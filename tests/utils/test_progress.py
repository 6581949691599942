import io

from maskface.utils.progress import LOG_INTERVAL_S, progress_bar


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_refreshes_rarely_off_a_terminal():
    log = io.StringIO()
    bar = progress_bar(range(1000), file=log, desc="work")
    assert bar.mininterval == LOG_INTERVAL_S
    assert list(bar) == list(range(1000))
    bar.close()
    # a fast loop leaves only the first and the final state in the log, not one line per step
    states = [s for s in log.getvalue().replace("\r", "\n").splitlines() if s.strip()]
    assert 1 <= len(states) <= 3 and "1000/1000" in states[-1]


def test_terminal_keeps_tqdm_defaults_and_explicit_interval_wins():
    bar = progress_bar(range(3), file=FakeTerminal())
    assert bar.mininterval == 0.1  # tqdm's default
    bar.close()
    bar = progress_bar(range(3), file=io.StringIO(), mininterval=2.0)
    assert bar.mininterval == 2.0
    bar.close()

"""setup_logging: rank 0 logs to stderr and output_dir/log.txt, other ranks to log.txt.rankN only."""

import logging

from maskface.utils.logger import setup_logging


def test_setup_logging_files_per_rank(tmp_path):
    root = logging.getLogger("maskface")
    saved = (list(root.handlers), root.level)
    try:
        setup_logging(str(tmp_path), rank=0)
        assert sum(type(h) is logging.StreamHandler for h in root.handlers) == 1
        logging.getLogger("maskface.test").info("hello from rank 0")
        setup_logging(str(tmp_path), rank=1, level=logging.WARNING)
        assert not any(type(h) is logging.StreamHandler for h in root.handlers) and root.level == logging.WARNING
        logging.getLogger("maskface.test").warning("hello from rank 1")
        for h in root.handlers:
            h.flush()
        assert "hello from rank 0" in (tmp_path / "log.txt").read_text()
        assert "hello from rank 1" in (tmp_path / "log.txt.rank1").read_text()
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])

"""The helpers that moved below the engine (to maskface.utils and maskface.config) stay
importable from their old engine modules, as the very same objects."""

import maskface.config
import maskface.engine.checkpoint as engine_checkpoint
import maskface.engine.launch as engine_launch
import maskface.engine.utils as engine_utils
import maskface.utils.checkpoint
import maskface.utils.comm
import maskface.utils.device
import maskface.utils.logger


def test_old_engine_names_are_the_new_objects():
    for name in ("load_checkpoint_file", "load_model_weights"):
        assert getattr(engine_checkpoint, name) is getattr(maskface.utils.checkpoint, name)
    for name in ("is_dist", "get_rank", "get_world_size", "get_local_rank", "is_main_process", "synchronize",
                 "all_gather_object", "reduce_mean"):
        assert getattr(engine_launch, name) is getattr(maskface.utils.comm, name)
    assert engine_utils.resolve_device is maskface.utils.device.resolve_device
    assert engine_utils.setup_logging is maskface.utils.logger.setup_logging
    assert engine_utils.save_config is maskface.config.save_config

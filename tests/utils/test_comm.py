"""Process-group queries outside a process group: one process of rank 0; the collectives are
identities. (Two real gloo processes: tests/engine/test_launch.py.)"""

from maskface.utils import comm


def test_single_process_answers():
    assert not comm.is_dist()
    assert comm.get_rank() == 0 and comm.get_world_size() == 1 and comm.is_main_process()
    assert comm.get_local_rank() == 0
    comm.synchronize()  # a no-op
    assert comm.all_gather_object({"a": 1}) == [{"a": 1}]
    values = {"loss": 1.5}
    mean = comm.reduce_mean(values)
    assert mean == values and mean is not values


def test_the_launcher_records_the_local_rank_here():
    from maskface.engine import launch

    try:
        comm.set_local_rank(3)
        assert comm.get_local_rank() == 3 and launch.get_local_rank() == 3
    finally:
        comm.set_local_rank(0)

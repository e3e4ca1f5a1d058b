"""``make_workload``: one interface for every workload, unknown names refused."""

import pytest

from paraexec.workloads import make_workload, workload_names, workload_params


def test_known_names():
    assert {"transfers", "hotspot", "perps", "replay"} <= set(workload_names())


@pytest.mark.parametrize("name", ["transfers", "hotspot"])
def test_transfer_workloads_share_the_interface(name):
    w = make_workload(name, accounts=12, seed=4, hot_ratio=0.3, markets=99)  # extra params are ignored
    assert w.app_name == "transfers"
    assert w.chain_id
    assert len(w.genesis_config()["accounts"]) == 12
    assert len(w.block(1, 9)) == 9


def test_params_are_introspected():
    assert "hot_ratio" in workload_params("hotspot")
    assert "hot_ratio" not in workload_params("transfers")


def test_unknown_workload_is_refused():
    with pytest.raises(ValueError, match="unknown workload"):
        make_workload("nope")

"""Dead client paths are traced to the controller behind them, or to nobody."""

from lab.drill.paths import controllers_behind_dead_paths
from lab.topology import load_topology

A, B = "192.168.55.10", "192.168.55.11"
PORTALS = {"sda": A, "sdb": B, "sdc": B, "sdd": A}


def test_failed_paths_lead_to_their_controllers():
    paths = {"CTRL_A": {"sda": "failed", "sdb": "active"}, "CTRL_B": {"sdc": "active", "sdd": "failed"}}
    assert controllers_behind_dead_paths(load_topology(), paths, PORTALS) == {"ctrl-a"}


def test_a_failed_path_through_the_survivor_is_blamed_on_it():
    paths = {"CTRL_A": {"sda": "failed", "sdb": "failed"}, "CTRL_B": {"sdc": "active", "sdd": "active"}}
    assert controllers_behind_dead_paths(load_topology(), paths, PORTALS) == {"ctrl-a", "ctrl-b"}


def test_a_missing_path_belongs_to_the_controller_no_disk_leads_to():
    paths = {"CTRL_A": {"sdb": "active"}, "CTRL_B": {"sdc": "active", "sdd": "active"}}
    assert controllers_behind_dead_paths(load_topology(), paths, PORTALS) == {"ctrl-a"}


def test_all_live_is_nobody():
    paths = {"CTRL_A": {"sda": "active", "sdb": "standby"}, "CTRL_B": {"sdc": "active", "sdd": "standby"}}
    assert controllers_behind_dead_paths(load_topology(), paths, PORTALS) == set()


def test_an_untraceable_disk_blames_nobody_in_particular():
    paths = {"CTRL_A": {"sda": "failed", "sdx": "active"}, "CTRL_B": {"sdc": "active", "sdd": "active"}}
    assert controllers_behind_dead_paths(load_topology(), paths, PORTALS) is None

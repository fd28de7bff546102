from lab.drill.claims import Expectation
from lab.drill.runner import Drill
from lab.executor import CommandResult
from lab.record import RunRecord
from lab.stacks import get_stack


class NoPoolsSession:
    """A host that has imported no pool: OpenZFS says so on stderr and exits 0."""

    stack = get_stack("linux")

    def run(self, host, cmd, timeout=60, label=""):
        return CommandResult(cmd, 0, "", "no pools available\n", 0.1)


def test_a_controller_with_no_pool_imported_reads_as_no_pools(tmp_path):
    drill = Drill(NoPoolsSession(), RunRecord.create(tmp_path, "t"), {"provisioned": Expectation.HOLD})
    assert drill.pool_status("ctrl-a", "final") == []
    assert (drill.record.folder / "zpool" / "ctrl-a-final.txt").read_text() == "no pools available\n"

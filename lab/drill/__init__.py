"""The drill, Jepsen's way: a workload runs, a nemesis strikes, checks judge what was observed.

Holds: the ``Drill`` a step acts through (context), nemeses (power-off, freeze, cut cable), the workload
(copy + I/O probe), pure checks over typed observations, the claims and their expectations, the shared
steps scenarios are declared from, the takeover oracle, kept-lab state, the live progress display, and the
one orchestrator that runs a scenario and writes its run folder.
Must not know: which provider or stack runs underneath (it asks the stack for commands and facts, the
provider only to power, pause, cut and restart), nor how a report is drawn (it writes ``lab.runfolder``).
"""

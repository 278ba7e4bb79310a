"""The layout's promises that lint cannot show: no import cycle anywhere among our modules.

``lint-imports`` (``make lint``) checks the contracts in ``pyproject.toml``; this counts
every import statement, also those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import grimp

OURS = ("appliance", "vision", "local_db", "webui", "sync", "cloud_hub", "lab")


def test_no_import_cycle_among_our_modules() -> None:
    graph = grimp.build_graph(*OURS, cache_dir=None)
    assert {"webui.app", "webui.editor", "appliance.cli", "lab.sim.engine"} <= graph.modules
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append(" -> ".join((importer, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)

"""The map kinds as the command-line help lists them: names and one-line summaries, from the map-kind registry."""

from __future__ import annotations


def map_kinds_help() -> str:
    """``"rrw: <summary>; boundary: <summary>; ..."`` for every registered kind (argparse-safe: ``%`` escaped)."""
    from nnunet_lossplug.maps import available_map_kinds, get_map_kind

    entries = []
    for name in available_map_kinds():
        summary = get_map_kind(name).summary
        entries.append(f"{name}: {summary}" if summary else name)
    return "; ".join(entries).replace("%", "%%")

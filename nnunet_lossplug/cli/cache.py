"""``nnunet-lossplug cache list`` / ``cache prune``: the precompute caches under ``$nnUNet_preprocessed``.

``list`` shows every cache folder (dataset, plans, configuration, map kind, size, and whether today's plans use it);
``prune`` removes the stale ones the plugin made, after printing what and how much, with ``--yes`` or a
confirmation. What counts as stale and as the plugin's is :mod:`nnunet_lossplug.nnunet.map_cache.inventory`'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="list the precompute caches under $nnUNet_preprocessed, or remove the stale ones",
        description=(
            "The precompute caches (nnUNet_preprocessed/DatasetXXX/lossplug_cache/...). 'list' shows each with "
            "its dataset, plans, configuration, map kind, size and whether today's plans still use it; 'prune' "
            "removes the stale caches the plugin made (never a file it did not write, never through a link)."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every cache, its size and whether it is valid or stale")
    prune = actions.add_parser("prune", help="remove the stale caches (asks first unless --yes)")
    for sub in (listing, prune):
        sub.add_argument("-d", "--dataset", default=None, help="only this dataset (name or id)")
    prune.add_argument("--yes", action="store_true", help="remove without asking")
    parser.set_defaults(func=run)


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _status(cache) -> str:
    text = cache.state + (f" ({cache.reason})" if cache.reason else "")
    return text + (" [through a symbolic link: not pruned]" if cache.via_link and cache.state == "stale" else "")


def run(args: argparse.Namespace) -> int:
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    from nnunet_lossplug.nnunet.map_cache.inventory import find_caches

    root = Path(nnUNet_preprocessed.require())
    dataset = maybe_convert_to_dataset_name(args.dataset) if args.dataset is not None else None
    caches = find_caches(root, dataset)
    if args.action == "list":
        return _list(caches, root)
    return _prune(caches, args.yes)


def _list(caches: list, root: Path) -> int:
    if not caches:
        print(f"No precompute cache under {root}/*/lossplug_cache.")
        return 0
    rows = [("dataset", "plans", "configuration", "kind", "size", "status", "folder")]
    rows += [(c.dataset, c.plans, c.configuration, c.kind, _mib(c.size_bytes), _status(c), str(c.folder))
             for c in caches]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths)) + "  " + "  ".join(row[5:]))
    stale = [c for c in caches if c.removable]
    hint = ": nnunet-lossplug cache prune removes them" if stale else ""
    print(f"{len(caches)} caches, {_mib(sum(c.size_bytes for c in caches))}; {len(stale)} stale "
          f"({_mib(sum(c.size_bytes for c in stale))}){hint}")
    return 0


def _prune(caches: list, yes: bool) -> int:
    from nnunet_lossplug.nnunet.map_cache.inventory import remove_cache

    stale = [c for c in caches if c.removable]
    for cache in caches:
        if cache.state == "stale" and cache.via_link:
            print(f"kept {cache.folder}: stale, but reached through a symbolic link, which prune never follows")
    if not stale:
        print("No stale cache to remove.")
        return 0
    total = sum(c.size_bytes for c in stale)
    for cache in stale:
        print(f"stale  {_mib(cache.size_bytes):>10}  {cache.folder}  ({cache.reason})")
    print(f"{len(stale)} stale caches, {_mib(total)} in all.")
    if not yes:
        if not sys.stdin.isatty():
            print("Nothing removed: pass --yes to remove them (no terminal to ask on).", file=sys.stderr)
            return 1
        if input(f"Remove these {len(stale)} caches ({_mib(total)})? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Nothing removed.")
            return 1
    freed = 0
    for cache in stale:
        try:
            freed += remove_cache(cache)
        except (BlockingIOError, ValueError) as err:
            print(f"kept {cache.folder}: {err}", file=sys.stderr)
    print(f"Removed {_mib(freed)}.")
    return 0

"""How every Nexmark implementation's results are counted and checksummed, so the
benchmark (benches/nexmark.py) can compare a peer's run with the plain-Python
reference: plain Python, imported by the Bytewax and PyFlink scripts in their own
virtualenvs and by the benchmark itself.

The checksum is the sum of the CRC-32 of each result's ``repr`` as a plain tuple
(order-independent, so a parallel or differently ordered run matches). q4 emits
updates: its results are each category's last ``(category, average, auctions)``."""

from __future__ import annotations

import argparse
import json
import zlib
from typing import Any, Dict, Optional, Tuple

#: A bid's fields in order: q0's results are the bids themselves, dicts in the peers.
BID_FIELDS = ("auction", "bidder", "price", "channel", "url", "date_time", "extra")


def add_arguments(ap: argparse.ArgumentParser, queries) -> None:
    """The command line every peer script takes: ``QUERY PATH [--check FILE [--digest]]``."""
    ap.add_argument("query", choices=sorted(queries))
    ap.add_argument("path")
    ap.add_argument("--check", help="write the results' count to this JSON file")
    ap.add_argument("--digest", action="store_true", help="and their checksum (costs ~1.5 us per result)")


class Tally:
    """Counts a query's results and, with ``digest``, sums their checksums."""

    def __init__(self, query: str, digest: bool = True) -> None:
        self.query, self.digest = query, digest
        self.n = self.sum = 0
        self.last: Dict[Any, Tuple[float, int]] = {}  # q4: each category's last update

    def add(self, result: Any) -> None:
        if self.query == "q4":
            c, avg, n = result
            if n > self.last.get(c, (0.0, 0))[1]:
                self.last[c] = (avg, n)
            return
        self.n += 1
        if self.digest:
            r = tuple(result[f] for f in BID_FIELDS) if type(result) is dict else tuple(result)
            self.sum += zlib.crc32(repr(r).encode())

    def result(self) -> Dict[str, int]:
        """``{"results": n}``, and ``"digest"`` if asked for (q4's last updates counted)."""
        n, total = self.n, self.sum
        for c, (avg, count) in self.last.items():
            n += 1
            total += zlib.crc32(repr((c, avg, count)).encode())
        return {"results": n, **({"digest": total} if self.digest else {})}

    def write(self, path: Optional[str]) -> None:
        if path:
            with open(path, "w") as f:
                json.dump(self.result(), f)

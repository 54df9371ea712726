"""HyperLogLog: count distinct visitors in a few kilobytes.

The demo counts unique views per circuit the way the site it stands for did: instead of
a row per (circuit, visitor), each circuit keeps ``2**p`` small registers. A visitor id
is hashed to 64 bits (BLAKE2b); the first ``p`` bits pick a register, which keeps the
largest "position of the first 1 bit" seen in the remaining bits. The estimate is the
harmonic mean of ``2**register`` scaled by ``alpha * m**2`` (Flajolet et al., 2007),
with linear counting for small cardinalities (where many registers are still zero). With
a 64-bit hash, the large-range correction of the 32-bit original is not needed.

With the default ``p = 14`` (16,384 registers) the standard error is
``1.04 / sqrt(16384)``, about 0.8%. Registers are stored zlib-compressed: a circuit with
few visitors has mostly zero registers and takes a few hundred bytes.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Iterable

DEFAULT_PRECISION = 14
"""Register index bits: 2**14 registers, ~0.8% standard error."""


def _hash64(item: str) -> int:
    digest = hashlib.blake2b(item.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class HyperLogLog:
    """A HyperLogLog sketch of a set of strings.

    Args:
        precision: ``p``, the number of hash bits that pick a register (4 to 18).
    """

    def __init__(self, precision: int = DEFAULT_PRECISION) -> None:
        if not 4 <= precision <= 18:
            msg = f"HyperLogLog precision must be between 4 and 18, got {precision}"
            raise ValueError(msg)
        self.precision = precision
        self.registers = bytearray(1 << precision)

    @property
    def m(self) -> int:
        """The number of registers."""
        return len(self.registers)

    def add(self, item: str) -> bool:
        """Add an item; return whether any register changed (so the sketch needs saving)."""
        h = _hash64(item)
        index = h >> (64 - self.precision)
        rest_bits = 64 - self.precision
        rest = h & ((1 << rest_bits) - 1)
        rank = rest_bits - rest.bit_length() + 1
        if rank > self.registers[index]:
            self.registers[index] = rank
            return True
        return False

    def update(self, items: Iterable[str]) -> None:
        """Add every item."""
        for item in items:
            self.add(item)

    def merge(self, other: HyperLogLog) -> None:
        """Make this sketch count the union of both sets."""
        if other.precision != self.precision:
            msg = f"cannot merge precision {other.precision} into precision {self.precision}"
            raise ValueError(msg)
        self.registers = bytearray(map(max, self.registers, other.registers))

    def estimate(self) -> float:
        """Return the estimated number of distinct items added."""
        m = self.m
        alpha = 0.7213 / (1 + 1.079 / m) if m >= 128 else {16: 0.673, 32: 0.697, 64: 0.709}[m]
        harmonic = sum(2.0**-r for r in self.registers)
        raw = alpha * m * m / harmonic
        zeros = self.registers.count(0)
        if raw <= 2.5 * m and zeros:
            return m * math.log(m / zeros)
        return raw

    def __len__(self) -> int:
        """Return the estimate, rounded."""
        return round(self.estimate())

    def to_bytes(self) -> bytes:
        """Serialise: one byte of precision, then the zlib-compressed registers."""
        return bytes([self.precision]) + zlib.compress(bytes(self.registers))

    @classmethod
    def from_bytes(cls, data: bytes | None) -> HyperLogLog:
        """Load a sketch saved by :meth:`to_bytes`; ``None`` or empty gives an empty one."""
        if not data:
            return cls()
        sketch = cls(data[0])
        registers = zlib.decompress(data[1:])
        if len(registers) != sketch.m:
            msg = f"HyperLogLog data has {len(registers)} registers, expected {sketch.m}"
            raise ValueError(msg)
        sketch.registers = bytearray(registers)
        return sketch

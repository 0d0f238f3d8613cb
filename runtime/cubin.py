"""Read the function symbols of a cubin (an ELF file) without CUDA tools."""

from __future__ import annotations

import struct

_SHT_SYMTAB = 2
_STT_FUNC = 2


def functions(cubin: bytes) -> dict[str, int]:
    """Function symbols defined in `cubin`, name -> size in bytes of SASS."""
    if cubin[:4] != b"\x7fELF" or cubin[4] != 2:
        raise ValueError("not a 64-bit ELF cubin")
    shoff, = struct.unpack_from("<Q", cubin, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", cubin, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", cubin, shoff + i * shentsize) for i in range(shnum)]
    result = {}
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != _SHT_SYMTAB:
            continue
        strtab_offset = sections[link][4]
        for at in range(offset, offset + size, entsize):
            name_at, info, _, shndx, _, sym_size = struct.unpack_from("<IBBHQQ", cubin, at)
            if info & 0xF == _STT_FUNC and shndx != 0:
                end = cubin.index(b"\0", strtab_offset + name_at)
                result[cubin[strtab_offset + name_at:end].decode()] = sym_size
    return result

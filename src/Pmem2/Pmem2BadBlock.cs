namespace Pmem2;

/// <summary>struct pmem2_badblock: a bad range of a source, in bytes from the start of the file
/// (regular files: rounded out to the filesystem block) or of the device DAX.</summary>
/// <param name="Offset">Offset of the first bad byte.</param>
/// <param name="Length">Length of the bad range.</param>
public readonly record struct Pmem2BadBlock(ulong Offset, ulong Length)
{
    /// <summary>One past the last bad byte (saturates at <see cref="ulong.MaxValue"/>).</summary>
    public ulong End => ulong.MaxValue - Offset < Length ? ulong.MaxValue : Offset + Length;

    /// <summary>Whether <c>[offset, offset + length)</c> touches this range.</summary>
    public bool Overlaps(ulong offset, ulong length) => length != 0 && offset < End && Offset < (ulong.MaxValue - offset < length ? ulong.MaxValue : offset + length);
}

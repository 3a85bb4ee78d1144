using System.Globalization;

namespace PmemCtl;

/// <summary>A region reference on the command line: <c>NAME</c>, <c>NAME@OFFSET</c> or <c>NAME@OFFSET:LENGTH</c>.</summary>
/// <param name="Name">Region name.</param>
/// <param name="Offset">Offset (0 when not given).</param>
/// <param name="Length">Length, or <see langword="null"/> when not given.</param>
/// <param name="HasOffset">Whether an offset was given.</param>
public readonly record struct RegionTarget(string Name, long Offset, long? Length, bool HasOffset)
{
    /// <summary>Parses a target.</summary>
    /// <param name="text">The argument.</param>
    /// <param name="allowLength">Whether <c>:LENGTH</c> may be given.</param>
    /// <param name="requireLength">Whether <c>:LENGTH</c> must be given.</param>
    /// <exception cref="UsageException">Malformed.</exception>
    public static RegionTarget Parse(string text, bool allowLength = true, bool requireLength = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var at = text.IndexOf('@', StringComparison.Ordinal);
        var name = at < 0 ? text : text[..at];
        if (name.Length == 0)
        {
            throw new UsageException($"invalid region '{text}': the name is empty (expected NAME[@OFFSET[:LENGTH]])");
        }

        long offset = 0;
        long? length = null;
        if (at >= 0)
        {
            var rest = text[(at + 1)..];
            var colon = rest.IndexOf(':', StringComparison.Ordinal);
            var offsetText = colon < 0 ? rest : rest[..colon];
            offset = Sizes.Parse(offsetText, "offset");
            if (colon >= 0)
            {
                if (!allowLength)
                {
                    throw new UsageException($"invalid region '{text}': a length is not accepted here (expected NAME[@OFFSET])");
                }

                length = Sizes.Parse(rest[(colon + 1)..], "length");
            }
        }

        if (requireLength && length is null)
        {
            throw new UsageException($"invalid region '{text}': expected NAME@OFFSET:LENGTH");
        }

        return new RegionTarget(name, offset, length, at >= 0);
    }

    /// <inheritdoc />
    public override string ToString() => Length is { } l
        ? string.Create(CultureInfo.InvariantCulture, $"{Name}@{Offset}:{l}")
        : string.Create(CultureInfo.InvariantCulture, $"{Name}@{Offset}");
}

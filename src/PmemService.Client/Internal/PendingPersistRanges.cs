namespace PmemService.Client.Internal;

/// <summary>
/// Ranges a direct client copied with NoDrain at CACHE_LINE/BYTE granularity: flushed but not yet fenced,
/// so not persistent and not yet reported to the service's watchers. They are reported after the next
/// drain. A range that starts where the last one ended extends it (a bulk copy in pieces becomes one
/// report); the list is bounded: <see cref="Add"/> says when it is full, and the owner then drains and
/// reports (<see cref="TakeAll"/>). Thread-safe.
/// </summary>
internal sealed class PendingPersistRanges
{
    /// <summary>At most this many separate ranges wait for a drain.</summary>
    public const int Capacity = 64;

    private readonly Lock _lock = new();
    private readonly List<(long Offset, long End)> _ranges = [];

    /// <summary>Adds <c>[offset, offset+length)</c>; true when <see cref="Capacity"/> is reached (drain and report now).</summary>
    public bool Add(long offset, long length)
    {
        if (length <= 0)
        {
            return false;
        }

        lock (_lock)
        {
            var end = checked(offset + length);
            if (_ranges.Count > 0 && _ranges[^1].End == offset)
            {
                _ranges[^1] = (_ranges[^1].Offset, end);
            }
            else
            {
                _ranges.Add((offset, end));
            }

            return _ranges.Count >= Capacity;
        }
    }

    /// <summary>Removes and returns every waiting range, oldest first, as (offset, length).</summary>
    public (long Offset, long Length)[] TakeAll()
    {
        lock (_lock)
        {
            var taken = _ranges.Select(r => (r.Offset, r.End - r.Offset)).ToArray();
            _ranges.Clear();
            return taken;
        }
    }
}

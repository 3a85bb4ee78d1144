using Grpc.Core;

namespace PmemService.Server.Internal;

/// <summary>
/// The sum of mapped region sizes against <c>PmemService:MaxMappedBytes</c>, and per region owner against
/// <c>PmemService:MaxMappedBytesPerIdentity</c> (a mapping is charged to its region's owner when it is made).
/// </summary>
internal sealed class MappedBytesBudget
{
    private readonly Lock _lock = new();
    private readonly long _limit;
    private readonly long _perOwnerLimit;
    private readonly Dictionary<string, long> _byOwner = new(StringComparer.Ordinal);
    private long _bytes;

    public MappedBytesBudget(long limit, long perOwnerLimit = 0)
    {
        _limit = limit;
        _perOwnerLimit = perOwnerLimit;
    }

    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>Mapped bytes charged to <paramref name="owner"/>.</summary>
    public long BytesOf(string owner)
    {
        lock (_lock)
        {
            return _byOwner.GetValueOrDefault(owner);
        }
    }

    /// <summary>Reserves <paramref name="size"/> bytes or throws RESOURCE_EXHAUSTED <c>MAPPED_BYTES_LIMIT</c> / <c>MAPPED_BYTES_QUOTA</c>.</summary>
    public void Reserve(string name, ulong size, string? owner = null)
    {
        lock (_lock)
        {
            if ((ulong)_bytes + size > (ulong)_limit)
            {
                throw new PmemServiceException(StatusCode.ResourceExhausted, PmemErrorReasons.MappedBytesLimit,
                    $"Mapping region '{name}' ({size} bytes) would exceed the {_limit} mapped bytes allowed (PmemService:MaxMappedBytes); {_bytes} are mapped.")
                    .With("region", name).With("limit", _limit).With("mapped_bytes", _bytes);
            }

            var owned = owner is null ? 0 : _byOwner.GetValueOrDefault(owner);
            if (owner is not null && _perOwnerLimit > 0 && (ulong)owned + size > (ulong)_perOwnerLimit)
            {
                throw new PmemServiceException(StatusCode.ResourceExhausted, PmemErrorReasons.MappedBytesQuota,
                    $"Mapping region '{name}' ({size} bytes) would exceed the {_perOwnerLimit} mapped bytes its owner may have (PmemService:MaxMappedBytesPerIdentity); {owned} are mapped.")
                    .With("region", name).With("limit", _perOwnerLimit).With("mapped_bytes", owned);
            }

            _bytes += (long)size;
            if (owner is not null)
            {
                _byOwner[owner] = owned + (long)size;
            }
        }
    }

    public void Release(ulong size, string? owner = null)
    {
        lock (_lock)
        {
            _bytes -= (long)size;
            if (owner is not null && _byOwner.TryGetValue(owner, out var owned))
            {
                owned -= (long)size;
                if (owned <= 0)
                {
                    _byOwner.Remove(owner);
                }
                else
                {
                    _byOwner[owner] = owned;
                }
            }
        }
    }
}

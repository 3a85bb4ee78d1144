using Grpc.Core;

namespace PmemService.Server.Internal;

/// <summary>The sum of mapped region sizes against <c>PmemService:MaxMappedBytes</c>.</summary>
internal sealed class MappedBytesBudget
{
    private readonly Lock _lock = new();
    private readonly long _limit;
    private long _bytes;

    public MappedBytesBudget(long limit) => _limit = limit;

    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>Reserves <paramref name="size"/> bytes or throws RESOURCE_EXHAUSTED <c>MAPPED_BYTES_LIMIT</c>.</summary>
    public void Reserve(string name, ulong size)
    {
        lock (_lock)
        {
            if ((ulong)_bytes + size > (ulong)_limit)
            {
                throw new PmemServiceException(StatusCode.ResourceExhausted, PmemErrorReasons.MappedBytesLimit,
                    $"Mapping region '{name}' ({size} bytes) would exceed the {_limit} mapped bytes allowed (PmemService:MaxMappedBytes); {_bytes} are mapped.")
                    .With("region", name).With("limit", _limit).With("mapped_bytes", _bytes);
            }

            _bytes += (long)size;
        }
    }

    public void Release(ulong size)
    {
        lock (_lock)
        {
            _bytes -= (long)size;
        }
    }
}

using System.Globalization;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using Grpc.Core;
using PmemService.Contracts.V1;

namespace PmemService.Client;

/// <summary>Result of <see cref="PmemClient.CompareAndSwapAsync"/>.</summary>
/// <param name="Swapped">Whether the value was replaced.</param>
/// <param name="Previous">The value found (equal to the expected one when swapped).</param>
public readonly record struct CompareAndSwapResult(bool Swapped, long Previous);

/// <summary>Result of <see cref="PmemClient.WriteAsync(string, long, ReadOnlyMemory{byte}, FlushType, CancellationToken)"/>
/// and <see cref="PmemClient.PersistAsync(string, long, long, FlushType, CancellationToken)"/>.</summary>
/// <param name="Bytes">Bytes written (or covered by the persist).</param>
/// <param name="FlushType">What the server did: <see cref="FlushType.Persistent"/> or <see cref="FlushType.Visibility"/>.</param>
public readonly record struct FlushResult(long Bytes, FlushType FlushType)
{
    /// <summary>Whether the bytes are persistent now.</summary>
    public bool Persisted => FlushType == FlushType.Persistent;
}

/// <summary>Sharing primitives (issue 14): persistent atomics, flush types, watches and resumable uploads.</summary>
public sealed partial class PmemClient
{
    private const string UploadNotFoundReason = "UPLOAD_NOT_FOUND";

    /// <summary>
    /// Atomically stores <paramref name="value"/> in the 8 bytes at the 8-byte aligned <paramref name="offset"/>
    /// (little-endian), persistent when the task completes. Not retried automatically.
    /// </summary>
    public async Task AtomicWriteAsync(string name, long offset, long value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        await UnaryAsync(_client.AtomicWriteAsync, new AtomicWriteRequest { Name = name, Offset = (ulong)offset, Value = value }, cancellationToken)
            .ConfigureAwait(false);
    }

    /// <summary>
    /// Atomically replaces the 8 bytes at the 8-byte aligned <paramref name="offset"/> with <paramref name="desired"/>
    /// when they hold <paramref name="expected"/> (a CPU compare-and-swap on the server's shared mapping, so it is
    /// atomic against direct-access clients too); the 8 bytes are persistent when the task completes, swapped or not.
    /// Not retried automatically.
    /// </summary>
    public async Task<CompareAndSwapResult> CompareAndSwapAsync(string name, long offset, long expected, long desired, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        var response = await UnaryAsync(_client.CompareAndSwapAsync,
            new CompareAndSwapRequest { Name = name, Offset = (ulong)offset, Expected = expected, Desired = desired }, cancellationToken).ConfigureAwait(false);
        return new CompareAndSwapResult(response.Swapped, response.Previous);
    }

    /// <summary>
    /// Atomically adds <paramref name="delta"/> (wrapping) to the 8 bytes at the 8-byte aligned <paramref name="offset"/>;
    /// persistent when the task completes. Returns the value before the add. Not retried automatically.
    /// </summary>
    public async Task<long> FetchAddAsync(string name, long offset, long delta, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        var response = await UnaryAsync(_client.FetchAddAsync, new FetchAddRequest { Name = name, Offset = (ulong)offset, Delta = delta }, cancellationToken)
            .ConfigureAwait(false);
        return response.Previous;
    }

    /// <summary>
    /// Writes bytes at an offset with an explicit flush type: <see cref="FlushType.Persistent"/> (durable when it returns)
    /// or <see cref="FlushType.Visibility"/> (visible to every other client at once, durable only after a later persist).
    /// </summary>
    public async Task<FlushResult> WriteAsync(string name, long offset, ReadOnlyMemory<byte> data, FlushType flushType, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        var request = new WriteRegionRequest { Name = name, Offset = (ulong)offset, Data = UnsafeByteOperations.UnsafeWrap(data), FlushType = flushType };
        var response = await UnaryAsync(_client.WriteRegionAsync, request, cancellationToken).ConfigureAwait(false);
        return new FlushResult((long)response.BytesWritten, response.FlushType);
    }

    /// <summary>Persists (<see cref="FlushType.Persistent"/>) or only makes visible (<see cref="FlushType.Visibility"/>) a range,
    /// or the whole region when <paramref name="offset"/> and <paramref name="length"/> are 0.</summary>
    public async Task<FlushResult> PersistAsync(string name, long offset, long length, FlushType flushType, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var request = new PersistRegionRequest { Name = name, Offset = (ulong)offset, Length = (ulong)length, FlushType = flushType };
        var response = await UnaryAsync(_client.PersistRegionAsync, request, cancellationToken).ConfigureAwait(false);
        return new FlushResult((long)response.BytesPersisted, response.FlushType);
    }

    /// <summary>What the server recorded for resumable upload <paramref name="uploadId"/> of region <paramref name="name"/>; null when nothing is.</summary>
    public async Task<UploadInfo?> GetUploadAsync(string name, string uploadId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentException.ThrowIfNullOrEmpty(uploadId);
        try
        {
            var response = await UnaryAsync(_client.GetUploadAsync, new GetUploadRequest { Name = name, UploadId = uploadId }, cancellationToken).ConfigureAwait(false);
            return response.Upload;
        }
        catch (PmemException e) when (e.Reason == UploadNotFoundReason)
        {
            return null;
        }
    }

    /// <summary>
    /// A resumable upload that survives this process: uploads <paramref name="sourcePath"/> into region
    /// <paramref name="name"/> at <paramref name="offset"/> under the client-chosen <paramref name="uploadId"/>. The server
    /// records, durably with the region, how far the upload's bytes are persistent; when a record exists (an earlier run
    /// was killed), the upload resumes from its persisted offset instead of the start. Use a new id for a new upload.
    /// The result covers the bytes sent by this run (<see cref="UploadResult.Offset"/> is where it resumed).
    /// With <paramref name="resume"/> false the upload starts at <paramref name="offset"/> whatever was recorded.
    /// </summary>
    public async Task<UploadResult> UploadResumableAsync(
        string sourcePath,
        string name,
        string uploadId,
        long offset = 0,
        IProgress<long>? progress = null,
        CancellationToken cancellationToken = default,
        CancellationToken stopToken = default,
        bool resume = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(sourcePath);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentException.ThrowIfNullOrEmpty(uploadId);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        var source = new FileStream(sourcePath, new FileStreamOptions
        {
            Mode = FileMode.Open,
            Access = FileAccess.Read,
            Share = FileShare.Read,
            BufferSize = 0,
            Options = FileOptions.Asynchronous | FileOptions.SequentialScan,
        });
        await using (source.ConfigureAwait(false))
        {
            var resumeAt = offset;
            if (resume && await GetUploadAsync(name, uploadId, cancellationToken).ConfigureAwait(false) is { } record
                && (long)record.StartOffset == offset && (long)record.PersistedOffset >= offset && (long)record.PersistedOffset <= offset + source.Length)
            {
                resumeAt = (long)record.PersistedOffset;
            }

            source.Seek(resumeAt - offset, SeekOrigin.Begin);
            return await UploadCoreAsync(source, name, resumeAt, progress, cancellationToken, stopToken, uploadId).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Watches region <paramref name="name"/>: yields, in order, every range that became persistent (or, with
    /// <see cref="FlushType.Visibility"/>, visible) with its per-region sequence number. On a transient failure
    /// (UNAVAILABLE, a reset connection) it reconnects with the last sequence seen, so no event still in the server's
    /// bounded history is missed; when events were missed (history overflow, a server restart) it throws
    /// <see cref="PmemException"/> with reason WATCH_HISTORY_OVERFLOW. Up to <see cref="PmemClientOptions.MaxTransferResumes"/>
    /// consecutive reconnects without an event, with backoff. No deadline: it runs until cancelled.
    /// </summary>
    /// <param name="name">Region name.</param>
    /// <param name="afterSequence">Resume point: events after this sequence (0: events from now on).</param>
    /// <param name="epoch">The epoch <paramref name="afterSequence"/> belongs to (empty: the server's current one).</param>
    /// <param name="fromHistory">With <paramref name="afterSequence"/> 0: start with the events still in the history.</param>
    /// <param name="cancellationToken">Ends the watch.</param>
    public async IAsyncEnumerable<WatchRegionResponse> WatchAsync(
        string name,
        ulong afterSequence = 0,
        string? epoch = null,
        bool fromHistory = false,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        var after = afterSequence;
        var currentEpoch = epoch ?? string.Empty;
        var failures = 0;
        while (true)
        {
            var request = new WatchRegionRequest { Name = name, AfterSequence = after, Epoch = currentEpoch, FromHistory = fromHistory && after == 0 };
            using var call = _client.WatchRegion(request, CreateCallOptions(null, cancellationToken));
            var stream = call.ResponseStream;
            // A watch "from now" pins its start (the sequence and epoch in the response headers), so a reconnect
            // before the first event neither skips events published in between nor hides a server restart.
            var pin = after == 0 && currentEpoch.Length == 0;
            while (true)
            {
                WatchRegionResponse? next;
                try
                {
                    if (pin)
                    {
                        var headers = await call.ResponseHeadersAsync.ConfigureAwait(false);
                        currentEpoch = headers.GetValue(WatchEpochHeader) ?? string.Empty;
                        if (!request.FromHistory && ulong.TryParse(headers.GetValue(WatchSequenceHeader), NumberStyles.None, CultureInfo.InvariantCulture, out var latest))
                        {
                            after = latest;
                        }

                        pin = false;
                    }

                    next = await stream.MoveNext(cancellationToken).ConfigureAwait(false) ? stream.Current : null;
                }
                catch (RpcException ex) when (!(ex.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested))
                {
                    var error = PmemException.FromRpcException(ex);
                    if (!IsResumable(error) || ++failures > _options.MaxTransferResumes)
                    {
                        throw error;
                    }

                    await Task.Delay(Backoff(failures), cancellationToken).ConfigureAwait(false);
                    break;
                }
                catch (RpcException ex)
                {
                    throw Translate(ex, cancellationToken);
                }

                if (next is null)
                {
                    yield break; // the server ended the watch normally
                }

                failures = 0;
                after = next.Sequence;
                currentEpoch = next.Epoch;
                yield return next;
            }
        }
    }

    /// <summary>Response header of WatchRegion: the server's watch epoch.</summary>
    public const string WatchEpochHeader = "pmem-watch-epoch";

    /// <summary>Response header of WatchRegion: the region's latest sequence when the watch started.</summary>
    public const string WatchSequenceHeader = "pmem-watch-sequence";

    /// <summary>Formats a watch event for logs and the CLI.</summary>
    public static string FormatWatchEvent(WatchRegionResponse e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return string.Create(CultureInfo.InvariantCulture, $"#{e.Sequence} {e.Kind} [{e.Offset}, +{e.Length}) {e.FlushType}");
    }
}

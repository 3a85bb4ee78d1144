using System.Buffers;
using System.Diagnostics;
using System.IO.Hashing;
using Google.Protobuf;
using Grpc.Core;
using PmemService.Contracts.V1;

namespace PmemService.Client;

public sealed partial class PmemClient
{
    private const string RegionNotMappedReason = "REGION_NOT_MAPPED";

    /// <summary>
    /// Uploads a file into a region at <paramref name="offset"/> through StreamWriteRegion
    /// (see <see cref="UploadAsync(Stream, string, long, IProgress{long}?, CancellationToken)"/>).
    /// </summary>
    public async Task<UploadResult> UploadAsync(
        string sourcePath,
        string name,
        long offset = 0,
        IProgress<long>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(sourcePath);
        var source = new FileStream(sourcePath, new FileStreamOptions
        {
            Mode = FileMode.Open,
            Access = FileAccess.Read,
            Share = FileShare.Read,
            BufferSize = 0, // reads go straight into the pooled chunk buffers
            Options = FileOptions.Asynchronous | FileOptions.SequentialScan,
        });
        await using (source.ConfigureAwait(false))
        {
            return await UploadAsync(source, name, offset, progress, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Uploads the rest of <paramref name="source"/> into region <paramref name="name"/> at
    /// <paramref name="offset"/> through StreamWriteRegion, in chunks of
    /// <see cref="PmemClientOptions.ChunkSize"/>. Everything is persistent when the task completes.
    /// </summary>
    /// <remarks>
    /// <para>Chunks are read into pooled buffers and sent without copies; the next chunk is read
    /// while the previous one is being written.</para>
    /// <para>When a stream fails with a transient status (UNAVAILABLE, ABORTED, CANCELLED not caused
    /// by <paramref name="cancellationToken"/>, or a transport failure) and <paramref name="source"/> is seekable, the upload resumes from the last persisted
    /// offset the server reported (trailer <c>pmem-persisted-offset</c> / ErrorInfo metadata
    /// <c>persisted_offset</c>), re-seeking the source, up to
    /// <see cref="PmemClientOptions.MaxTransferResumes"/> consecutive failures without progress,
    /// with exponential backoff.</para>
    /// <para>Integrity: the CRC-64 of each completed stream is compared with the one the server
    /// computed; bytes persisted by interrupted streams are read back and compared when
    /// <see cref="PmemClientOptions.VerifyResumedRanges"/> is set. A mismatch throws
    /// <see cref="PmemChecksumMismatchException"/>.</para>
    /// </remarks>
    /// <param name="source">Data to upload, from its current position to its end.</param>
    /// <param name="name">Region name (the region must be mapped and large enough).</param>
    /// <param name="offset">Region offset of the first byte.</param>
    /// <param name="progress">Receives the number of source bytes sent so far (it moves back after a resume).</param>
    /// <param name="cancellationToken">Cancels the upload; bytes already acknowledged stay persistent.</param>
    public Task<UploadResult> UploadAsync(
        Stream source,
        string name,
        long offset = 0,
        IProgress<long>? progress = null,
        CancellationToken cancellationToken = default) =>
        UploadAsync(source, name, offset, progress, cancellationToken, stopToken: CancellationToken.None);

    /// <summary>
    /// Like <see cref="UploadAsync(Stream, string, long, IProgress{long}?, CancellationToken)"/>, with a
    /// graceful stop: when <paramref name="stopToken"/> fires, no further chunk is sent, the stream is
    /// completed normally, the server persists what it received and reports the persisted offset, and the
    /// upload ends with <see cref="PmemUploadStoppedException"/> carrying it (<see cref="PmemException.PersistedOffset"/>).
    /// <paramref name="cancellationToken"/> still aborts at once (and then the client cannot learn the offset).
    /// </summary>
    public Task<UploadResult> UploadAsync(
        Stream source,
        string name,
        long offset,
        IProgress<long>? progress,
        CancellationToken cancellationToken,
        CancellationToken stopToken) =>
        UploadCoreAsync(source, name, offset, progress, cancellationToken, stopToken, uploadId: null);

    private async Task<UploadResult> UploadCoreAsync(
        Stream source,
        string name,
        long offset,
        IProgress<long>? progress,
        CancellationToken cancellationToken,
        CancellationToken stopToken,
        string? uploadId)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (!source.CanRead)
        {
            throw new ArgumentException("The source stream is not readable.", nameof(source));
        }

        var stopwatch = Stopwatch.StartNew();
        var chunkSize = _options.ChunkSize;
        var seekable = source.CanSeek;
        var sourceStart = seekable ? source.Position : 0;
        long? totalLength = seekable ? Math.Max(0, source.Length - sourceStart) : null;

        var whole = new Crc64();
        long hashedUpTo = 0;           // source-relative: bytes already folded into `whole`
        long position = 0;             // source-relative: first byte of the next attempt
        var interrupted = new List<(long Start, long Length)>(); // persisted by failed attempts, unverified
        var resumedFrom = new List<long>();
        var interruptions = new List<PmemException>();
        var attempts = 0;
        var failuresWithoutProgress = 0;
        var sawUnavailable = false;

        var bufferA = ArrayPool<byte>.Shared.Rent(chunkSize);
        var bufferB = ArrayPool<byte>.Shared.Rent(chunkSize);
        Task<int>? pendingRead = null;
        try
        {
            while (true)
            {
                attempts++;
                var segmentStart = position;
                var sent = position;
                var segmentCrc = new Crc64();
                var stopped = false;
                try
                {
                    using var call = _client.StreamWriteRegion(CreateCallOptions(_options.TransferDeadline, cancellationToken));
                    var header = new StreamWriteHeader
                    {
                        Name = name,
                        Offset = (ulong)(offset + segmentStart),
                        TotalLength = totalLength is { } total ? (ulong)(total - segmentStart) : 0,
                        UploadId = uploadId ?? string.Empty,
                    };
                    await WriteMessageAsync(call, new StreamWriteRegionRequest { Header = header }, cancellationToken).ConfigureAwait(false);

                    var current = bufferA;
                    var next = bufferB;
                    pendingRead = FillAsync(source, current, chunkSize, cancellationToken);
                    while (true)
                    {
                        var n = await pendingRead.ConfigureAwait(false);
                        pendingRead = null;
                        if (n == 0)
                        {
                            break;
                        }

                        // Zero-copy: the message wraps the rented buffer, which is not touched again
                        // until WriteAsync has completed (serialized and handed to HTTP/2).
                        var message = new StreamWriteRegionRequest
                        {
                            Data = UnsafeByteOperations.UnsafeWrap(current.AsMemory(0, n)),
                        };
                        var write = WriteMessageAsync(call, message, cancellationToken);

                        // Overlap: hash this chunk and read the next one while it is being sent.
                        var span = current.AsSpan(0, n);
                        segmentCrc.Append(span);
                        var end = sent + n;
                        if (end > hashedUpTo)
                        {
                            whole.Append(span[(int)(hashedUpTo - sent)..]);
                            hashedUpTo = end;
                        }

                        pendingRead = n == chunkSize
                            ? FillAsync(source, next, chunkSize, cancellationToken)
                            : Task.FromResult(0); // FillAsync returns a short count only at end of stream
                        await write.ConfigureAwait(false);
                        sent = end;
                        progress?.Report(sent);
                        (current, next) = (next, current);
                        if (stopToken.IsCancellationRequested)
                        {
                            stopped = true; // complete the stream: the server persists and reports how far it got
                            break;
                        }
                    }

                    try
                    {
                        await call.RequestStream.CompleteAsync().ConfigureAwait(false);
                    }
                    catch (Exception ex) when (!cancellationToken.IsCancellationRequested && (ex is not RpcException || ex is RpcException { StatusCode: StatusCode.Cancelled }))
                    {
                        // The call already ended; its status (awaited below) explains why.
                    }

                    var response = await call.ResponseAsync.ConfigureAwait(false);
                    var length = sent - segmentStart;
                    var crc = segmentCrc.GetCurrentHashAsUInt64();
                    if ((long)response.BytesPersisted != length || response.Crc64 != crc)
                    {
                        throw new PmemChecksumMismatchException(
                            $"upload to '{name}' at offset {offset + segmentStart}: sent {length} bytes with CRC-64 0x{crc:x16}, " +
                            $"server persisted {response.BytesPersisted} bytes with CRC-64 0x{response.Crc64:x16}",
                            crc, response.Crc64, offset + segmentStart, length);
                    }

                    if (stopped)
                    {
                        throw new PmemUploadStoppedException(name, offset, (long)response.PersistedOffset, null);
                    }

                    break;
                }
                catch (RpcException ex) when (!(ex.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested))
                {
                    await DrainAsync(pendingRead).ConfigureAwait(false);
                    pendingRead = null;

                    var error = PmemException.FromRpcException(ex);
                    if (stopped)
                    {
                        // The server ended the shortened stream (STREAM_LENGTH_MISMATCH when total_length was
                        // sent) after persisting what it had: its persisted offset is the answer.
                        throw new PmemUploadStoppedException(name, offset, error.PersistedOffset ?? offset + segmentStart, error);
                    }

                    if (!seekable || !(IsResumable(error) || (sawUnavailable && IsRestartGap(error))))
                    {
                        throw error;
                    }

                    sawUnavailable |= error.Kind == PmemErrorKind.Unavailable;
                    interruptions.Add(error);

                    // Resume from what the server says is persistent; without that, restart the attempt
                    // (rewriting the same bytes at the same offsets is harmless).
                    var persisted = error.PersistedOffset is { } p ? p - offset : segmentStart;
                    if (persisted < segmentStart || persisted > sent)
                    {
                        persisted = segmentStart;
                    }

                    if (persisted > segmentStart)
                    {
                        interrupted.Add((segmentStart, persisted - segmentStart));
                        failuresWithoutProgress = 0;
                    }
                    else if (++failuresWithoutProgress > _options.MaxTransferResumes)
                    {
                        throw error;
                    }

                    if (_options.MaxTransferResumes == 0)
                    {
                        throw error;
                    }

                    position = persisted;
                    source.Seek(sourceStart + position, SeekOrigin.Begin);
                    resumedFrom.Add(offset + position);
                    progress?.Report(position);
                    await Task.Delay(Backoff(Math.Max(failuresWithoutProgress, 1)), cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    throw;
                }
                catch (RpcException ex)
                {
                    throw Translate(ex, cancellationToken);
                }
            }
        }
        finally
        {
            await DrainAsync(pendingRead).ConfigureAwait(false);
            ArrayPool<byte>.Shared.Return(bufferA);
            ArrayPool<byte>.Shared.Return(bufferB);
        }

        var uploaded = hashedUpTo;
        if (_options.VerifyResumedRanges && interrupted.Count > 0)
        {
            await VerifyRangesAsync(source, sourceStart, name, offset, interrupted, cancellationToken).ConfigureAwait(false);
            source.Seek(sourceStart + uploaded, SeekOrigin.Begin);
        }

        return new UploadResult(name, offset, uploaded, whole.GetCurrentHashAsUInt64(), attempts, resumedFrom, interruptions, stopwatch.Elapsed);
    }

    /// <summary>Downloads a region range into a file (created or truncated).</summary>
    /// <param name="name">Region name.</param>
    /// <param name="destinationPath">File to write.</param>
    /// <param name="offset">Region offset of the first byte.</param>
    /// <param name="length">Bytes to read; 0 means to the end of the region.</param>
    /// <param name="progress">Receives the number of bytes received so far.</param>
    /// <param name="cancellationToken">Cancels the download.</param>
    public async Task<DownloadResult> DownloadAsync(
        string name,
        string destinationPath,
        long offset = 0,
        long length = 0,
        IProgress<long>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(destinationPath);
        var destination = new FileStream(destinationPath, new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            Share = FileShare.None,
            BufferSize = 0,
            Options = FileOptions.Asynchronous,
            PreallocationSize = length,
        });
        await using (destination.ConfigureAwait(false))
        {
            return await DownloadAsync(name, destination, offset, length, progress, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Downloads a region range into <paramref name="destination"/> through StreamReadRegion, in
    /// chunks of <see cref="PmemClientOptions.ReadChunkSize"/>. Chunk offsets are checked to be
    /// contiguous; a stream that breaks with a transient status resumes after the last received
    /// byte (up to <see cref="PmemClientOptions.MaxTransferResumes"/> consecutive failures without progress).
    /// </summary>
    /// <param name="name">Region name.</param>
    /// <param name="destination">Where the bytes go, written sequentially.</param>
    /// <param name="offset">Region offset of the first byte.</param>
    /// <param name="length">Bytes to read; 0 means to the end of the region.</param>
    /// <param name="progress">Receives the number of bytes received so far.</param>
    /// <param name="cancellationToken">Cancels the download.</param>
    public async Task<DownloadResult> DownloadAsync(
        string name,
        Stream destination,
        long offset = 0,
        long length = 0,
        IProgress<long>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var stopwatch = Stopwatch.StartNew();
        var crc = new Crc64();
        var received = await ReadRangeAsync(
            name,
            offset,
            length,
            async (data, ct) =>
            {
                crc.Append(data.Span);
                await destination.WriteAsync(data, ct).ConfigureAwait(false);
            },
            progress,
            cancellationToken).ConfigureAwait(false);
        await destination.FlushAsync(cancellationToken).ConfigureAwait(false);
        return new DownloadResult(name, offset, received.Length, crc.GetCurrentHashAsUInt64(), received.Attempts, stopwatch.Elapsed);
    }

    /// <summary>Streams a range to <paramref name="sink"/>, resuming after transient failures.</summary>
    private async Task<(long Length, int Attempts)> ReadRangeAsync(
        string name,
        long offset,
        long length,
        Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink,
        IProgress<long>? progress,
        CancellationToken cancellationToken)
    {
        long received = 0;
        var attempts = 0;
        var failuresWithoutProgress = 0;
        var sawUnavailable = false;
        while (true)
        {
            attempts++;
            var attemptStart = received;
            try
            {
                var request = new StreamReadRegionRequest
                {
                    Name = name,
                    Offset = (ulong)(offset + received),
                    Length = length == 0 ? 0 : (ulong)(length - received),
                    ChunkSize = (uint)_options.ReadChunkSize,
                };
                using var call = _client.StreamReadRegion(request, CreateCallOptions(_options.TransferDeadline, cancellationToken));
                var responses = call.ResponseStream;
                while (await responses.MoveNext(cancellationToken).ConfigureAwait(false))
                {
                    var chunk = responses.Current;
                    var expected = offset + received;
                    if ((long)chunk.Offset != expected)
                    {
                        throw new PmemException(
                            PmemErrorKind.ChecksumMismatch,
                            "OFFSET_MISMATCH",
                            $"download of '{name}': expected a chunk at offset {expected}, got one at {chunk.Offset}");
                    }

                    if (length != 0 && received + chunk.Data.Length > length)
                    {
                        throw new PmemException(
                            PmemErrorKind.ChecksumMismatch,
                            "LENGTH_MISMATCH",
                            $"download of '{name}': the server sent more than the {length} bytes requested");
                    }

                    await sink(chunk.Data.Memory, cancellationToken).ConfigureAwait(false);
                    received += chunk.Data.Length;
                    progress?.Report(received);
                }

                if (length != 0 && received != length)
                {
                    throw new PmemException(
                        PmemErrorKind.ChecksumMismatch,
                        "LENGTH_MISMATCH",
                        $"download of '{name}': the stream ended after {received} of {length} bytes");
                }

                return (received, attempts);
            }
            catch (RpcException ex) when (!(ex.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested))
            {
                var error = PmemException.FromRpcException(ex);
                if (!(IsResumable(error) || (sawUnavailable && IsRestartGap(error))) || _options.MaxTransferResumes == 0)
                {
                    throw error;
                }

                sawUnavailable |= error.Kind == PmemErrorKind.Unavailable;

                failuresWithoutProgress = received > attemptStart ? 0 : failuresWithoutProgress + 1;
                if (failuresWithoutProgress > _options.MaxTransferResumes)
                {
                    throw error;
                }

                await Task.Delay(Backoff(Math.Max(failuresWithoutProgress, 1)), cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException ex)
            {
                throw Translate(ex, cancellationToken);
            }
        }
    }

    /// <summary>Reads back the ranges persisted by interrupted attempts and compares their CRC-64 with the source's.</summary>
    private async Task VerifyRangesAsync(
        Stream source,
        long sourceStart,
        string name,
        long offset,
        List<(long Start, long Length)> ranges,
        CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(_options.ChunkSize);
        try
        {
            foreach (var (start, length) in ranges)
            {
                var expected = new Crc64();
                source.Seek(sourceStart + start, SeekOrigin.Begin);
                for (var left = length; left > 0;)
                {
                    var n = await FillAsync(source, buffer, (int)Math.Min(left, buffer.Length), cancellationToken).ConfigureAwait(false);
                    if (n == 0)
                    {
                        throw new PmemException(PmemErrorKind.Unknown, "SOURCE_CHANGED", "the upload source became shorter while resuming");
                    }

                    expected.Append(buffer.AsSpan(0, n));
                    left -= n;
                }

                var actual = new Crc64();
                await ReadRangeAsync(
                    name,
                    offset + start,
                    length,
                    (data, _) =>
                    {
                        actual.Append(data.Span);
                        return ValueTask.CompletedTask;
                    },
                    null,
                    cancellationToken).ConfigureAwait(false);

                var e = expected.GetCurrentHashAsUInt64();
                var a = actual.GetCurrentHashAsUInt64();
                if (e != a)
                {
                    throw new PmemChecksumMismatchException(
                        $"upload to '{name}': bytes persisted before a resume at offset {offset + start} (+{length}) " +
                        $"have CRC-64 0x{a:x16} on the server, 0x{e:x16} in the source",
                        e, a, offset + start, length);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads until <paramref name="count"/> bytes are in <paramref name="buffer"/> or the stream ends.</summary>
    private static async Task<int> FillAsync(Stream source, byte[] buffer, int count, CancellationToken cancellationToken)
    {
        var total = 0;
        while (total < count)
        {
            var n = await source.ReadAsync(buffer.AsMemory(total, count - total), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        return total;
    }

    private static async Task DrainAsync(Task? task)
    {
        if (task is null)
        {
            return;
        }

        try
        {
            await task.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Only waiting for the buffer to be released; the upload's own error wins.
        }
    }

    /// <summary>
    /// Writes one message; when the write fails because the call already ended (the server answered
    /// early with an error, or the transport broke), throws the call's status instead. A write that
    /// races the server's early answer can fail as CANCELLED (the HTTP/2 stream was reset under it)
    /// or with InvalidOperationException before the trailers are read; the server's own status (for
    /// example DATA_LOSS after a failed persist) is the one the caller must see, so both wait for it.
    /// </summary>
    private static async Task WriteMessageAsync(
        AsyncClientStreamingCall<StreamWriteRegionRequest, StreamWriteRegionResponse> call,
        StreamWriteRegionRequest message,
        CancellationToken cancellationToken)
    {
        try
        {
            await call.RequestStream.WriteAsync(message, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && (ex is not RpcException || ex is RpcException { StatusCode: StatusCode.Cancelled }))
        {
            await call.ResponseAsync.ConfigureAwait(false);
            throw;
        }
    }

    private static bool IsResumable(PmemException error) => error.Kind switch
    {
        // Callers filter out their own cancellation first: a CANCELLED seen here came from the server
        // or the transport (e.g. a stream reset while the server shuts down).
        PmemErrorKind.Unavailable or PmemErrorKind.Aborted or PmemErrorKind.Cancelled => true,
        // Transport failures (connection reset, server killed) carry no ErrorInfo reason.
        PmemErrorKind.Internal or PmemErrorKind.Unknown => error.Reason is null,
        _ => false,
    };

    /// <summary>
    /// A server that restarted (after an UNAVAILABLE) has lost its mappings until their owner maps the
    /// region again: REGION_NOT_MAPPED is then worth waiting for, within the resume budget.
    /// </summary>
    private static bool IsRestartGap(PmemException error) =>
        error.Kind == PmemErrorKind.FailedPrecondition && error.Reason == RegionNotMappedReason;

    private TimeSpan Backoff(int failures)
    {
        var ceiling = Math.Min(
            _options.MaxBackoff.TotalMilliseconds,
            _options.InitialBackoff.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 16)));
        // Jitter in [ceiling/2, ceiling].
        return TimeSpan.FromMilliseconds(ceiling * (0.5 + (Random.Shared.NextDouble() / 2)));
    }
}

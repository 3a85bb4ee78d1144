using System.CommandLine;
using System.Text;
using PmemService.Client;
using PmemService.Contracts.V1;

namespace PmemCtl;

internal sealed partial class CommandTree
{
    private static Option<string> ChunkSizeOption() => new("--chunk-size")
    {
        Description = "Bytes per streamed message [default: 1MiB]; keep below the server's message limit (4MiB)",
    };

    private Command BuildPutCommand()
    {
        var file = new Argument<string>("FILE") { Description = "File to upload ('-' for stdin)" };
        var target = new Argument<string>("NAME[@OFFSET]") { Description = "Region and offset to write at [default offset: 0]" };
        var create = new Option<bool>("--create", "-c")
        {
            Description = "Map the region first, creating it (sized OFFSET + file size) if it does not exist; the mapping reference is kept",
        };
        var granularity = new Option<string?>("--granularity", "-g") { Description = "Granularity for --create: byte, cache-line or page" };
        var chunk = ChunkSizeOption();
        var uploadId = new Option<string?>("--upload-id")
        {
            Description = "Make the upload resumable across pmemctl runs: the server records, with the region, how far this id's bytes are persistent",
        };
        var resume = new Option<bool>("--resume")
        {
            Description = "With --upload-id: continue from the offset the server recorded for the id (GetUpload) instead of the start",
        };
        var put = new Command("put", "Upload a file into a region through StreamWriteRegion (persisted, CRC-64 verified, resumable). " +
                                     "At offset 0 it records the file's length and CRC-64 as the region's content, so 'get NAME FILE' returns exactly the file; " +
                                     "Ctrl+C stops cleanly and prints how much is persisted")
        {
            file, target, create, granularity, chunk, uploadId, resume,
        };
        put.Aliases.Add("upload");
        SetHandler(put, async (ctx, pr) =>
        {
            var t = RegionTarget.Parse(pr.GetRequiredValue(target), allowLength: false);
            var path = pr.GetRequiredValue(file);
            var g = CliContext.ParseGranularity(pr.GetValue(granularity));
            var id = pr.GetValue(uploadId);
            if (pr.GetValue(resume) && id is null)
            {
                throw new UsageException("--resume needs --upload-id");
            }

            if (id is not null && path == "-")
            {
                throw new UsageException("--upload-id needs a file (a resumed upload seeks in it), not stdin");
            }

            Stream source;
            if (path == "-")
            {
                if (!ReferenceEquals(ctx.Out, Console.Out))
                {
                    throw new UsageException("'-' (stdin) is only available when pmemctl runs as a process");
                }

                source = Console.OpenStandardInput();
            }
            else
            {
                source = new FileStream(path, new FileStreamOptions
                {
                    Mode = FileMode.Open,
                    Access = FileAccess.Read,
                    Share = FileShare.Read,
                    BufferSize = 0,
                    Options = FileOptions.Asynchronous | FileOptions.SequentialScan,
                });
            }

            await using (source.ConfigureAwait(false))
            {
                long? total = source.CanSeek ? source.Length : null;
                if (pr.GetValue(create))
                {
                    await EnsureMappedAsync(ctx, t.Name, t.Offset + (total ?? 0), g).ConfigureAwait(false);
                }

                // The recorded content no longer holds once the region's bytes change: clear it first, record
                // the new one only when the whole upload (from offset 0) is persistent.
                var recordContent = await TryContentAsync(ctx, () => ctx.Client.ClearRegionContentAsync(t.Name, ctx.CancellationToken)).ConfigureAwait(false);
                ctx.Interrupts?.EnableGracefulStop();
                var stop = ctx.Interrupts?.StopToken ?? CancellationToken.None;
                var result = await ctx.WithProgressAsync(
                    $"put {t.Name}",
                    total,
                    progress => id is null
                        ? ctx.Client.UploadAsync(source, t.Name, t.Offset, progress, ctx.CancellationToken, stop)
                        : ctx.Client.UploadResumableAsync(path, t.Name, id, t.Offset, progress, ctx.CancellationToken, stop, pr.GetValue(resume))).ConfigureAwait(false);
                var resumedAt = result.Offset;
                if (result.Offset != t.Offset)
                {
                    // A resumed upload sent only the tail: the content is the whole file (the CRC of the region's
                    // bytes is what 'get' checks, so bytes of the earlier run are verified there).
                    source.Seek(0, SeekOrigin.Begin);
                    var whole = new System.IO.Hashing.Crc64();
                    await whole.AppendAsync(source, ctx.CancellationToken).ConfigureAwait(false);
                    result = result with { Offset = t.Offset, Length = source.Length, Crc64 = whole.GetCurrentHashAsUInt64() };
                }

                var recorded = recordContent && t.Offset == 0 && await TryContentAsync(ctx,
                    () => ctx.Client.SetRegionContentAsync(t.Name, result.Length, result.Crc64, CancellationToken.None)).ConfigureAwait(false);

                if (ctx.Json)
                {
                    ctx.WriteJson(new
                    {
                        file = path,
                        region = result.Region,
                        offset = result.Offset,
                        length = result.Length,
                        crc64 = PmemClient.FormatCrc64(result.Crc64),
                        seconds = Math.Round(result.Elapsed.TotalSeconds, 3),
                        bytesPerSecond = Math.Round(result.BytesPerSecond),
                        attempts = result.Attempts,
                        resumedFrom = result.ResumedFrom,
                        contentRecorded = recorded,
                        uploadId = id,
                        resumedAt,
                    });
                }
                else
                {
                    ctx.WriteLine(PmemCtlApp.Invariant(
                        $"put {path} -> {result.Region}@{result.Offset}: {result.Length} bytes ({Sizes.Format(result.Length)}) in {result.Elapsed.TotalSeconds:0.000} s ({Sizes.FormatRate(result.BytesPerSecond)}), crc64 {PmemClient.FormatCrc64(result.Crc64)}, persisted{(result.Attempts > 1 ? $", resumed {result.Attempts - 1} time(s)" : string.Empty)}{(recorded ? ", content recorded" : string.Empty)}"));
                }
            }

            return ExitCodes.Ok;
        }, chunk);
        return put;
    }

    /// <summary>Runs a content-metadata call; false (with a note on stderr) when the pool cannot keep it.</summary>
    private static async Task<bool> TryContentAsync(CliContext ctx, Func<Task> call)
    {
        try
        {
            await call().ConfigureAwait(false);
            return true;
        }
        catch (PmemException e) when (e.Reason == "CONTENT_METADATA_NOT_SUPPORTED" || e.StatusCode == Grpc.Core.StatusCode.Unimplemented)
        {
            await ctx.Err.WriteLineAsync($"note: the content length is not recorded ({e.ReasonOrCode}): 'get' will return the whole region").ConfigureAwait(false);
            return false;
        }
    }

    private static async Task EnsureMappedAsync(CliContext ctx, string name, long size, Granularity granularity)
    {
        try
        {
            var region = await ctx.Client.GetRegionAsync(name, ctx.CancellationToken).ConfigureAwait(false);
            if (!region.Mapped)
            {
                await ctx.Client.MapRegionAsync(name, 0, granularity, createIfMissing: false, ctx.CancellationToken).ConfigureAwait(false);
            }
        }
        catch (PmemException ex) when (ex.Kind == PmemErrorKind.RegionNotFound)
        {
            if (size <= 0)
            {
                throw new UsageException($"cannot create '{name}' for an empty or unsized source");
            }

            await ctx.Client.MapRegionAsync(name, size, granularity, createIfMissing: true, ctx.CancellationToken).ConfigureAwait(false);
        }
    }

    private Command BuildGetCommand()
    {
        var source = new Argument<string>("NAME[@OFFSET[:LENGTH]]") { Description = "Region range [default: the whole region]" };
        var file = new Argument<string>("FILE") { Description = "File to write ('-' for stdout)" };
        var chunk = ChunkSizeOption();
        var get = new Command("get", "Download a region range into a file through StreamReadRegion") { source, file, chunk };
        SetHandler(get, async (ctx, pr) =>
        {
            var t = RegionTarget.Parse(pr.GetRequiredValue(source));
            var path = pr.GetRequiredValue(file);
            var region = await ctx.Client.GetRegionAsync(t.Name, ctx.CancellationToken).ConfigureAwait(false);
            var size = (long)region.Size;
            if (t.Offset > size || (t.Length is { } l && t.Offset + l > size))
            {
                throw new PmemException(PmemErrorKind.OutOfRange, "RANGE_OUT_OF_BOUNDS",
                    PmemCtlApp.Invariant($"range {t.Offset}+{t.Length ?? 0} lies outside region '{t.Name}' of {size} bytes"));
            }

            // Without an explicit length: the recorded content (what 'put' stored), else the rest of the region.
            var content = region.HasContentLength ? (long)region.ContentLength : (long?)null;
            var end = content is { } c && t.Length is null ? Math.Max(c, t.Offset) : size;
            var length = t.Length ?? end - t.Offset;
            ulong? expectedCrc = content is not null && t.Length is null && t.Offset == 0
                && PmemClient.TryParseCrc64(region.ContentCrc64, out var recordedCrc) ? recordedCrc : null;
            DownloadResult result;
            if (path == "-")
            {
                if (!ctx.IsProcessStdout || ctx.Json)
                {
                    throw new UsageException("'-' (stdout) is only available when pmemctl runs as a process with --output text");
                }

                await using var stdout = Console.OpenStandardOutput();
                var streamed = await ctx.Client.DownloadAsync(t.Name, stdout, t.Offset, length, null, ctx.CancellationToken).ConfigureAwait(false);
                CheckContent(t.Name, streamed, expectedCrc);
                return ExitCodes.Ok;
            }

            // A partial download is removed only if this command created the file (never a device
            // such as /dev/full, never a file that existed before).
            var created = !File.Exists(path) && !Directory.Exists(path);
            var completed = false;
            try
            {
                result = length == 0
                    ? await ctx.Client.DownloadAsync(t.Name, path, t.Offset, 0, null, ctx.CancellationToken).ConfigureAwait(false)
                    : await ctx.WithProgressAsync(
                        $"get {t.Name}",
                        length,
                        progress => ctx.Client.DownloadAsync(t.Name, path, t.Offset, length, progress, ctx.CancellationToken)).ConfigureAwait(false);
                CheckContent(t.Name, result, expectedCrc);
                completed = true;
            }
            finally
            {
                if (!completed && created)
                {
                    TryDeleteRegularFile(path);
                }
            }

            if (ctx.Json)
            {
                ctx.WriteJson(new
                {
                    region = result.Region,
                    file = path,
                    offset = result.Offset,
                    length = result.Length,
                    crc64 = PmemClient.FormatCrc64(result.Crc64),
                    seconds = Math.Round(result.Elapsed.TotalSeconds, 3),
                    bytesPerSecond = Math.Round(result.BytesPerSecond),
                    attempts = result.Attempts,
                    content = expectedCrc is not null,
                });
            }
            else
            {
                ctx.WriteLine(PmemCtlApp.Invariant(
                    $"get {result.Region}@{result.Offset} -> {path}: {result.Length} bytes ({Sizes.Format(result.Length)}) in {result.Elapsed.TotalSeconds:0.000} s ({Sizes.FormatRate(result.BytesPerSecond)}), crc64 {PmemClient.FormatCrc64(result.Crc64)}{(expectedCrc is not null ? " (matches the recorded content)" : string.Empty)}"));
            }

            return ExitCodes.Ok;
        }, chunk);
        return get;
    }

    /// <summary>A download of the recorded content must have the recorded CRC-64 (else the region changed since 'put').</summary>
    private static void CheckContent(string name, DownloadResult result, ulong? expectedCrc)
    {
        if (expectedCrc is { } expected && result.Crc64 != expected)
        {
            throw new PmemChecksumMismatchException(
                $"region '{name}' no longer holds the content 'put' recorded ({result.Length} bytes with crc64 {PmemClient.FormatCrc64(expected)}, " +
                $"read crc64 {PmemClient.FormatCrc64(result.Crc64)}): it was written since; 'get {name}@0:{result.Length} FILE' reads the bytes anyway",
                expected, result.Crc64, 0, result.Length);
        }
    }

    private Command BuildWriteCommand()
    {
        var target = new Argument<string>("NAME@OFFSET") { Description = "Region and offset [default offset: 0]" };
        var text = new Option<string?>("--text") { Description = "Data as UTF-8 text" };
        var hex = new Option<string?>("--hex") { Description = "Data as hexadecimal (e.g. deadbeef)" };
        var base64 = new Option<string?>("--base64") { Description = "Data as base64" };
        var defer = new Option<bool>("--defer-persist") { Description = "Deprecated: the same as --visibility" };
        var visibility = new Option<bool>("--visibility")
        {
            Description = "Flush type VISIBILITY: other clients see the bytes at once; durable only after a later 'persist'",
        };
        var write = new Command("write", "Write a few bytes with one WriteRegion call (durable when it returns)") { target, text, hex, base64, defer, visibility };
        SetHandler(write, async (ctx, pr) =>
        {
            var t = RegionTarget.Parse(pr.GetRequiredValue(target), allowLength: false);
            var given = new[] { (pr.GetValue(text), "text"), (pr.GetValue(hex), "hex"), (pr.GetValue(base64), "base64") }
                .Where(x => x.Item1 is not null).ToArray();
            if (given.Length != 1)
            {
                throw new UsageException("give exactly one of --text, --hex or --base64");
            }

            var (value, kind) = given[0];
            byte[] data;
            try
            {
                data = kind switch
                {
                    "text" => Encoding.UTF8.GetBytes(value!),
                    "hex" => Convert.FromHexString(value!.Replace(" ", string.Empty, StringComparison.Ordinal).Replace("0x", string.Empty, StringComparison.OrdinalIgnoreCase)),
                    _ => Convert.FromBase64String(value!),
                };
            }
            catch (FormatException ex)
            {
                throw new UsageException($"invalid --{kind} data: {ex.Message}");
            }

            var flushType = pr.GetValue(defer) || pr.GetValue(visibility) ? FlushType.Visibility : FlushType.Persistent;
            var written = await ctx.Client.WriteAsync(t.Name, t.Offset, data, flushType, ctx.CancellationToken).ConfigureAwait(false);
            var result = new WriteResult(written.Bytes, written.Persisted);
            if (ctx.Json)
            {
                ctx.WriteJson(new { region = t.Name, offset = t.Offset, bytesWritten = result.BytesWritten, persisted = result.Persisted, flushType = written.FlushType.ToString() });
            }
            else
            {
                ctx.WriteLine(PmemCtlApp.Invariant($"wrote {result.BytesWritten} bytes to {t.Name}@{t.Offset} ({(result.Persisted ? "persisted" : "not yet persisted")})"));
            }

            return ExitCodes.Ok;
        });
        return write;
    }

    private Command BuildReadCommand()
    {
        var target = new Argument<string>("NAME@OFFSET:LENGTH") { Description = "Region range (one ReadRegion call)" };
        var format = new Option<string>("--format", "-f") { Description = "How to print the bytes", DefaultValueFactory = _ => "hex" };
        format.AcceptOnlyFromAmong("text", "hex", "base64");
        var read = new Command("read", "Read a few bytes with one ReadRegion call and print them") { target, format };
        SetHandler(read, async (ctx, pr) =>
        {
            var t = RegionTarget.Parse(pr.GetRequiredValue(target), requireLength: true);
            if (t.Length > int.MaxValue)
            {
                throw new UsageException("read is for small ranges; use 'get' for large ones");
            }

            var data = await ctx.Client.ReadAsync(t.Name, t.Offset, (int)t.Length!.Value, ctx.CancellationToken).ConfigureAwait(false);
            var kind = pr.GetValue(format);
            var rendered = kind switch
            {
                "text" => Encoding.UTF8.GetString(data.Span),
                "base64" => Convert.ToBase64String(data.Span),
                _ => Convert.ToHexStringLower(data.Span),
            };
            if (ctx.Json)
            {
                ctx.WriteJson(new { region = t.Name, offset = t.Offset, length = data.Length, format = kind, data = rendered });
            }
            else
            {
                ctx.WriteLine(rendered);
            }

            return ExitCodes.Ok;
        });
        return read;
    }

    private Command BuildPersistCommand()
    {
        var target = new Argument<string>("NAME[@OFFSET:LENGTH]") { Description = "Region range [default: the whole region]" };
        var visibilityOnly = new Option<bool>("--visibility") { Description = "Flush type VISIBILITY: only order after earlier stores (no persistence promise)" };
        var persist = new Command("persist", "Persist a range (flush + drain, or msync at page granularity)") { target, visibilityOnly };
        SetHandler(persist, async (ctx, pr) =>
        {
            var t = RegionTarget.Parse(pr.GetRequiredValue(target));
            if (t.HasOffset && t.Length is null)
            {
                throw new UsageException("persist takes NAME (whole region) or NAME@OFFSET:LENGTH");
            }

            var done = await ctx.Client.PersistAsync(t.Name, t.Offset, t.Length ?? 0, pr.GetValue(visibilityOnly) ? FlushType.Visibility : FlushType.Persistent, ctx.CancellationToken).ConfigureAwait(false);
            var bytes = done.Bytes;
            if (ctx.Json)
            {
                ctx.WriteJson(new { region = t.Name, offset = t.Offset, bytesPersisted = bytes, flushType = done.FlushType.ToString() });
            }
            else
            {
                ctx.WriteLine(PmemCtlApp.Invariant($"persisted {bytes} bytes of {t.Name} from offset {t.Offset}"));
            }

            return ExitCodes.Ok;
        });
        return persist;
    }

    private static void TryDeleteRegularFile(string path)
    {
        try
        {
            // Only called for files this command created (FileMode.Create on a path that did not exist).
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

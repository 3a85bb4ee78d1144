using System.CommandLine;
using System.Diagnostics;
using PmemService.Client;
using PmemService.Contracts.V1;

namespace PmemCtl;

internal sealed partial class CommandTree
{
    /// <summary>Piece size of direct copies (progress granularity).</summary>
    private const int DirectPiece = 1 << 20;

    /// <summary><c>pmemctl direct put/get</c>: the direct access lane (the region must be mapped by the service).</summary>
    private Command BuildDirectCommand()
    {
        var direct = new Command("direct", "Move data through the direct access lane: this process maps the region file itself (Unix socket only; the region must be mapped)");

        var putFile = new Argument<string>("FILE") { Description = "File to copy into the region" };
        var putTarget = new Argument<string>("NAME[@OFFSET]") { Description = "Region and offset [default offset: 0]" };
        var put = new Command("put", "Copy a file into a region through a direct mapping, then persist it") { putFile, putTarget };
        SetHandler(put, async (ctx, pr) =>
        {
            var t = RegionTarget.Parse(pr.GetRequiredValue(putTarget), allowLength: false);
            var path = pr.GetRequiredValue(putFile);
            await using var input = new FileStream(path, new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Read, Share = FileShare.Read, BufferSize = 0 });
            var total = input.Length;
            using var region = await ctx.Client.OpenDirectAsync(t.Name, DirectAccess.ReadWrite, Granularity.Unspecified, ctx.CancellationToken).ConfigureAwait(false);
            if (t.Offset + total > region.Size)
            {
                throw new PmemException(PmemErrorKind.OutOfRange, "RANGE_OUT_OF_BOUNDS",
                    PmemCtlApp.Invariant($"{total} bytes at {t.Offset} do not fit region '{t.Name}' of {region.Size} bytes"));
            }

            // PAGE: plain copies, one msync at the end. CACHE_LINE/BYTE: every piece copied and flushed
            // (non-temporal stores), one drain at the end. The file is read in 1 MiB pieces.
            var page = region.Granularity == Pmem2.Pmem2Granularity.Page;
            var flags = page ? Pmem2.Pmem2MemFlags.NoFlush : Pmem2.Pmem2MemFlags.NoDrain | Pmem2.Pmem2MemFlags.NonTemporal;
            var buffer = new byte[DirectPiece];
            var watch = Stopwatch.StartNew();
            var length = await ctx.WithProgressAsync($"direct put {t.Name}", total, async progress =>
            {
                long done = 0;
                int read;
                while (done < total && (read = await input.ReadAsync(buffer.AsMemory(0, (int)Math.Min(DirectPiece, total - done)), ctx.CancellationToken).ConfigureAwait(false)) > 0)
                {
                    region.Memcpy(t.Offset + done, buffer.AsSpan(0, read), flags);
                    done += read;
                    progress?.Report(done);
                }

                if (page)
                {
                    region.Persist(t.Offset, done);
                }
                else
                {
                    region.Drain();
                }

                return done;
            }).ConfigureAwait(false);
            watch.Stop();
            Report(ctx, "put", path, t.Name, t.Offset, length, watch.Elapsed, region);
            return ExitCodes.Ok;
        });

        var getSource = new Argument<string>("NAME[@OFFSET[:LENGTH]]") { Description = "Region range [default: the whole region]" };
        var getFile = new Argument<string>("FILE") { Description = "File to write" };
        var get = new Command("get", "Copy a region range into a file through a read-only direct mapping") { getSource, getFile };
        SetHandler(get, async (ctx, pr) =>
        {
            var t = RegionTarget.Parse(pr.GetRequiredValue(getSource));
            var path = pr.GetRequiredValue(getFile);
            using var region = await ctx.Client.OpenDirectAsync(t.Name, DirectAccess.ReadOnly, Granularity.Unspecified, ctx.CancellationToken).ConfigureAwait(false);
            var length = t.Length ?? region.Size - t.Offset;
            if (t.Offset > region.Size || length > region.Size - t.Offset)
            {
                throw new PmemException(PmemErrorKind.OutOfRange, "RANGE_OUT_OF_BOUNDS",
                    PmemCtlApp.Invariant($"range {t.Offset}+{length} lies outside region '{t.Name}' of {region.Size} bytes"));
            }

            var buffer = new byte[DirectPiece];
            var watch = Stopwatch.StartNew();
            await using (var output = new FileStream(path, new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, BufferSize = 0 }))
            {
                await ctx.WithProgressAsync($"direct get {t.Name}", length, async progress =>
                {
                    for (long done = 0; done < length; done += DirectPiece)
                    {
                        var piece = (int)Math.Min(DirectPiece, length - done);
                        region.Read(t.Offset + done, buffer.AsSpan(0, piece));
                        await output.WriteAsync(buffer.AsMemory(0, piece), ctx.CancellationToken).ConfigureAwait(false);
                        progress?.Report(done + piece);
                    }

                    return 0;
                }).ConfigureAwait(false);
            }

            watch.Stop();
            Report(ctx, "get", path, t.Name, t.Offset, length, watch.Elapsed, region);
            return ExitCodes.Ok;
        });

        var holdTarget = new Argument<string>("NAME") { Description = "Region" };
        var holdReadOnly = new Option<bool>("--read-only") { Description = "Take a read-only lease" };
        var holdCommands = new Option<bool>("--commands")
        {
            Description = "While holding, run commands read from stdin, one a line, through this process's mapping: "
                + "'put OFFSET FILE' (copy FILE in and persist; prints 'put N OFFSET'), 'get OFFSET LENGTH FILE' (prints 'got N OFFSET'); end of input releases the lease",
        };
        var hold = new Command("hold", "Take a direct lease and hold it until the service revokes it or the process is interrupted (prints 'holding NAME')") { holdTarget, holdReadOnly, holdCommands };
        SetHandler(hold, async (ctx, pr) =>
        {
            var name = pr.GetRequiredValue(holdTarget);
            var access = pr.GetValue(holdReadOnly) ? DirectAccess.ReadOnly : DirectAccess.ReadWrite;
            using var region = await ctx.Client.OpenDirectAsync(name, access, Granularity.Unspecified, ctx.CancellationToken).ConfigureAwait(false);
            ctx.WriteLine(PmemCtlApp.Invariant($"holding {name} ({region.Size} bytes, {region.Granularity}, {access})"));
            await ctx.Out.FlushAsync(ctx.CancellationToken).ConfigureAwait(false);
            using var both = CancellationTokenSource.CreateLinkedTokenSource(region.Revoked, ctx.CancellationToken);
            try
            {
                if (pr.GetValue(holdCommands))
                {
                    await RunHoldCommandsAsync(ctx, region, both.Token).ConfigureAwait(false);
                    return ExitCodes.Ok;
                }

                await Task.Delay(Timeout.Infinite, both.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (region.Revoked.IsCancellationRequested)
            {
                ctx.WriteLine($"revoked {name}");
            }

            return ExitCodes.Ok;
        });

        direct.Add(put);
        direct.Add(get);
        direct.Add(hold);
        return direct;
    }

    /// <summary><c>direct hold --commands</c>: put / get through the held mapping, driven by stdin (tests of
    /// processes sharing a region, scripts). Until end of input, revocation or interruption.</summary>
    private static async Task RunHoldCommandsAsync(CliContext ctx, DirectRegion region, CancellationToken cancellationToken)
    {
        using var input = new StreamReader(Console.OpenStandardInput());
        while (await input.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words is ["put", var at, var file])
            {
                var data = await File.ReadAllBytesAsync(file, cancellationToken).ConfigureAwait(false);
                var offset = long.Parse(at, System.Globalization.CultureInfo.InvariantCulture);
                region.Memcpy(offset, data); // persisted before it returns (no NOFLUSH)
                ctx.WriteLine(PmemCtlApp.Invariant($"put {data.Length} {offset}"));
            }
            else if (words is ["get", var from, var count, var output])
            {
                var offset = long.Parse(from, System.Globalization.CultureInfo.InvariantCulture);
                var data = new byte[int.Parse(count, System.Globalization.CultureInfo.InvariantCulture)];
                region.Read(offset, data);
                await File.WriteAllBytesAsync(output, data, cancellationToken).ConfigureAwait(false);
                ctx.WriteLine(PmemCtlApp.Invariant($"got {data.Length} {offset}"));
            }
            else if (words.Length > 0)
            {
                await ctx.Err.WriteLineAsync($"error: unknown command '{line}' (put OFFSET FILE | get OFFSET LENGTH FILE)").ConfigureAwait(false);
            }

            await ctx.Out.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private static void Report(CliContext ctx, string verb, string path, string name, long offset, long length, TimeSpan elapsed, DirectRegion region)
    {
        var rate = elapsed.TotalSeconds > 0 ? length / elapsed.TotalSeconds : 0;
        if (ctx.Json)
        {
            ctx.WriteJson(new
            {
                region = name,
                file = path,
                offset,
                length,
                granularity = region.Granularity.ToString(),
                mapSync = region.IsMapSync,
                seconds = Math.Round(elapsed.TotalSeconds, 6),
                bytesPerSecond = Math.Round(rate),
            });
        }
        else
        {
            var arrow = verb == "put" ? $"{path} -> {name}@{offset}" : $"{name}@{offset} -> {path}";
            ctx.WriteLine(PmemCtlApp.Invariant(
                $"direct {verb} {arrow}: {length} bytes ({Sizes.Format(length)}) in {elapsed.TotalSeconds:0.000} s ({Sizes.FormatRate(rate)}), {region.Granularity}{(verb == "put" ? ", persisted" : string.Empty)}"));
        }
    }
}

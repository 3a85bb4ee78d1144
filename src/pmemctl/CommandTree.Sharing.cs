using System.CommandLine;
using System.Globalization;
using PmemService.Client;

namespace PmemCtl;

/// <summary>Sharing primitives (issue 14): cas, fetch-add, atomic-write, watch.</summary>
internal sealed partial class CommandTree
{
    private static long ParseInt64(string text, string what)
    {
        var t = text.Trim();
        var ok = t.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? long.TryParse(t[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var v)
            : long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out v);
        return ok ? v : throw new UsageException($"{what} '{text}' is not a 64-bit integer (decimal, or hex with 0x)");
    }

    private Command BuildCasCommand()
    {
        var target = new Argument<string>("NAME@OFFSET") { Description = "Region and 8-byte aligned offset" };
        var expected = new Argument<string>("EXPECTED") { Description = "Value expected (64-bit integer)" };
        var desired = new Argument<string>("DESIRED") { Description = "Value stored when the current one equals EXPECTED" };
        var cas = new Command("cas", "Persistent compare-and-swap of the 8 bytes at OFFSET (exit 0 when swapped, 5 when not)") { target, expected, desired };
        SetHandler(cas, async (ctx, pr) =>
        {
            var t = RegionTarget.Parse(pr.GetRequiredValue(target), allowLength: false);
            var e = ParseInt64(pr.GetRequiredValue(expected), "EXPECTED");
            var d = ParseInt64(pr.GetRequiredValue(desired), "DESIRED");
            var result = await ctx.Client.CompareAndSwapAsync(t.Name, t.Offset, e, d, ctx.CancellationToken).ConfigureAwait(false);
            if (ctx.Json)
            {
                ctx.WriteJson(new { region = t.Name, offset = t.Offset, swapped = result.Swapped, previous = result.Previous, persisted = true });
            }
            else
            {
                ctx.WriteLine(PmemCtlApp.Invariant($"{(result.Swapped ? "swapped" : "not swapped")}: {t.Name}@{t.Offset} was {result.Previous}{(result.Swapped ? $", now {d}" : string.Empty)} (persisted)"));
            }

            return result.Swapped ? ExitCodes.Ok : ExitCodes.Conflict;
        });
        return cas;
    }

    private Command BuildFetchAddCommand()
    {
        var target = new Argument<string>("NAME@OFFSET") { Description = "Region and 8-byte aligned offset" };
        var delta = new Argument<string>("DELTA") { Description = "Added to the value (64-bit integer, may be negative)", DefaultValueFactory = _ => "1" };
        var add = new Command("fetch-add", "Persistent atomic add to the 8 bytes at OFFSET; prints the value before and after") { target, delta };
        SetHandler(add, async (ctx, pr) =>
        {
            var t = RegionTarget.Parse(pr.GetRequiredValue(target), allowLength: false);
            var d = ParseInt64(pr.GetRequiredValue(delta), "DELTA");
            var previous = await ctx.Client.FetchAddAsync(t.Name, t.Offset, d, ctx.CancellationToken).ConfigureAwait(false);
            var value = unchecked(previous + d);
            if (ctx.Json)
            {
                ctx.WriteJson(new { region = t.Name, offset = t.Offset, previous, value, persisted = true });
            }
            else
            {
                ctx.WriteLine(PmemCtlApp.Invariant($"{t.Name}@{t.Offset}: {previous} -> {value} (persisted)"));
            }

            return ExitCodes.Ok;
        });
        return add;
    }

    private Command BuildAtomicWriteCommand()
    {
        var target = new Argument<string>("NAME@OFFSET") { Description = "Region and 8-byte aligned offset" };
        var value = new Argument<string>("VALUE") { Description = "64-bit integer stored" };
        var store = new Command("atomic-write", "Persistent atomic store of 8 bytes at OFFSET") { target, value };
        SetHandler(store, async (ctx, pr) =>
        {
            var t = RegionTarget.Parse(pr.GetRequiredValue(target), allowLength: false);
            var v = ParseInt64(pr.GetRequiredValue(value), "VALUE");
            await ctx.Client.AtomicWriteAsync(t.Name, t.Offset, v, ctx.CancellationToken).ConfigureAwait(false);
            if (ctx.Json)
            {
                ctx.WriteJson(new { region = t.Name, offset = t.Offset, value = v, persisted = true });
            }
            else
            {
                ctx.WriteLine(PmemCtlApp.Invariant($"{t.Name}@{t.Offset} = {v} (persisted)"));
            }

            return ExitCodes.Ok;
        });
        return store;
    }

    private Command BuildWatchCommand()
    {
        var name = new Argument<string>("NAME") { Description = "Region to watch" };
        var after = new Option<ulong>("--after") { Description = "Resume after this sequence (from an earlier event) [default: from now]" };
        var epoch = new Option<string?>("--epoch") { Description = "Epoch of --after (from an earlier event); a server restart is then reported" };
        var history = new Option<bool>("--from-history") { Description = "Start with the events still in the server's history" };
        var count = new Option<int?>("--count", "-n") { Description = "Exit after this many events" };
        var watch = new Command("watch", "Print, in order, the ranges of a region that become persistent (one line, or one JSON object, per event) until interrupted")
        {
            name, after, epoch, history, count,
        };
        SetHandler(watch, async (ctx, pr) =>
        {
            var limit = pr.GetValue(count);
            if (limit is < 1)
            {
                throw new UsageException("--count must be positive");
            }

            var seen = 0;
            try
            {
                await foreach (var e in ctx.Client.WatchAsync(pr.GetRequiredValue(name), pr.GetValue(after), pr.GetValue(epoch), pr.GetValue(history), ctx.CancellationToken).ConfigureAwait(false))
                {
                    if (ctx.Json)
                    {
                        // One compact object per line (NDJSON), so a consumer can read events as they come.
                        ctx.WriteLine(System.Text.Json.JsonSerializer.Serialize(new { sequence = e.Sequence, epoch = e.Epoch, kind = e.Kind.ToString(), offset = e.Offset, length = e.Length, flushType = e.FlushType.ToString(), unixMs = e.UnixMs }));
                    }
                    else
                    {
                        ctx.WriteLine(PmemClient.FormatWatchEvent(e));
                    }

                    await ctx.Out.FlushAsync().ConfigureAwait(false);
                    if (++seen == limit)
                    {
                        break;
                    }
                }
            }
            catch (OperationCanceledException) when (ctx.CancellationToken.IsCancellationRequested)
            {
                return ExitCodes.Ok; // Ctrl+C ends a watch
            }

            return ExitCodes.Ok;
        });
        return watch;
    }
}

using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using PmemService.Client;
using PmemService.Contracts.V1;
using RegionInfo = PmemService.Contracts.V1.RegionInfo;
using Spectre.Console;

namespace PmemCtl;

/// <summary>Output format selected with <c>--output</c>.</summary>
public enum OutputFormat
{
    /// <summary>Human-readable lines.</summary>
    Text,
    /// <summary>One JSON document on stdout.</summary>
    Json,
}

/// <summary>Everything one pmemctl invocation needs: writers, global options and the (lazy) client.</summary>
internal sealed class CliContext : IDisposable
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly Action<PmemClientOptions>? _configureClient;
    private PmemClient? _client;

    public CliContext(
        TextWriter stdout,
        TextWriter stderr,
        string address,
        OutputFormat format,
        bool progress,
        TimeSpan? timeout,
        int? chunkSize,
        Action<PmemClientOptions>? configureClient,
        CancellationToken cancellationToken)
    {
        Out = stdout;
        Err = stderr;
        Address = address;
        Format = format;
        ProgressEnabled = progress;
        Timeout = timeout;
        ChunkSize = chunkSize;
        _configureClient = configureClient;
        CancellationToken = cancellationToken;
    }

    public TextWriter Out { get; }

    public TextWriter Err { get; }

    public string Address { get; }

    /// <summary>The canonical address when it parses, else as given.</summary>
    public string DisplayAddress => PmemEndpoint.TryParse(Address, out var endpoint) ? endpoint!.ToString() : Address;

    public OutputFormat Format { get; }

    public bool Json => Format == OutputFormat.Json;

    public bool ProgressEnabled { get; }

    public TimeSpan? Timeout { get; }

    public int? ChunkSize { get; }

    public CancellationToken CancellationToken { get; }

    /// <summary>Ctrl+C of this run (graceful stop for commands that support it).</summary>
    public Interrupts? Interrupts { get; init; }

    /// <summary>Whether stdout is the process's real console output (so binary data may go there).</summary>
    public bool IsProcessStdout => ReferenceEquals(Out, Console.Out);

    public PmemClient Client => _client ??= CreateClient();

    private PmemClient CreateClient()
    {
        var options = new PmemClientOptions();
        if (Timeout is { } t)
        {
            options.DefaultDeadline = t;
        }

        if (ChunkSize is { } c)
        {
            options.ChunkSize = c;
            options.ReadChunkSize = c;
        }

        _configureClient?.Invoke(options);
        try
        {
            return new PmemClient(Address, options);
        }
        catch (FormatException ex)
        {
            throw new UsageException(ex.Message);
        }
    }

    public void WriteJson<T>(T value) => Out.WriteLine(JsonSerializer.Serialize(value, s_json));

    public void WriteLine(string line) => Out.WriteLine(line);

    /// <summary>A Spectre console over stdout for tables (plain text when stdout is not a terminal).</summary>
    public IAnsiConsole CreateStdoutConsole()
    {
        var terminal = IsProcessStdout && !Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(Out),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        if (!terminal)
        {
            console.Profile.Width = 160;
        }

        return console;
    }

    /// <summary>Runs a transfer with a progress bar on stderr when enabled; plain otherwise.</summary>
    public async Task<T> WithProgressAsync<T>(string description, long? total, Func<IProgress<long>?, Task<T>> run)
    {
        if (!ProgressEnabled)
        {
            return await run(null).ConfigureAwait(false);
        }

        var realTerminal = ReferenceEquals(Err, Console.Error) && !Console.IsErrorRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(Err),
            Ansi = realTerminal ? AnsiSupport.Detect : AnsiSupport.Yes,
            ColorSystem = realTerminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.Yes,
        });
        if (!realTerminal)
        {
            console.Profile.Width = 120;
        }

        return await console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(
                new TaskDescriptionColumn(),
                new ProgressBarColumn(),
                new PercentageColumn(),
                new DownloadedColumn { Culture = CultureInfo.InvariantCulture },
                new TransferSpeedColumn { Culture = CultureInfo.InvariantCulture },
                new TimeColumn())
            .StartAsync(async progressContext =>
            {
                var task = progressContext.AddTask(description, autoStart: true, maxValue: Math.Max(1, total ?? 1));
                task.IsIndeterminate = total is null;
                var reporter = new SyncProgress(value =>
                {
                    if (total is null && value > task.MaxValue)
                    {
                        task.MaxValue = value;
                    }

                    task.Value = value;
                });
                var result = await run(reporter).ConfigureAwait(false);
                if (total is null)
                {
                    task.IsIndeterminate = false;
                    task.MaxValue = Math.Max(1, task.Value);
                }

                task.Value = task.MaxValue;
                task.StopTask();
                return result;
            }).ConfigureAwait(false);
    }

    public void Dispose() => _client?.Dispose();

    public static string GranularityName(Granularity granularity) => granularity switch
    {
        Granularity.Byte => "byte",
        Granularity.CacheLine => "cache-line",
        Granularity.Page => "page",
        _ => "unspecified",
    };

    public static Granularity ParseGranularity(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        null or "" => Granularity.Unspecified,
        "byte" => Granularity.Byte,
        "cache-line" or "cacheline" or "cache_line" or "cl" => Granularity.CacheLine,
        "page" => Granularity.Page,
        _ => throw new UsageException($"invalid granularity '{text}': expected byte, cache-line or page"),
    };

    public static object RegionJson(RegionInfo region, bool? created = null) => new
    {
        name = region.Name,
        size = (long)region.Size,
        mapped = region.Mapped,
        mapReferences = region.MapReferences,
        effectiveGranularity = region.Mapped ? GranularityName(region.EffectiveGranularity) : null,
        requestedGranularity = region.Mapped ? GranularityName(region.RequestedGranularity) : null,
        mapSync = region.MapSync,
        created = created ?? (region.Created ? true : (bool?)null),
        contentLength = region.HasContentLength ? (long)region.ContentLength : (long?)null,
        contentCrc64 = region.HasContentLength ? region.ContentCrc64 : null,
        owner = region.Owner.Length == 0 ? null : region.Owner,
        callerRights = region.CallerRights is null ? null : PmemClient.FormatRights(region.CallerRights),
    };

    /// <summary>Remaining time while a transfer runs ("eta 00:00:12"), the elapsed time once it is done ("in 3.4 s").</summary>
    private sealed class TimeColumn : ProgressColumn
    {
        public override Spectre.Console.Rendering.IRenderable Render(Spectre.Console.Rendering.RenderOptions options, ProgressTask task, TimeSpan deltaTime)
        {
            if (task.IsFinished)
            {
                var elapsed = task.ElapsedTime ?? TimeSpan.Zero;
                var text = elapsed < TimeSpan.FromMinutes(1)
                    ? elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s"
                    : elapsed.ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture);
                return new Text("in " + text);
            }

            var remaining = task.RemainingTime;
            return new Text("eta " + (remaining is { } r ? r.ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture) : "--:--:--"), new Style(Color.Blue));
        }
    }

    /// <summary>An <see cref="IProgress{T}"/> that reports synchronously on the reporting thread.</summary>
    private sealed class SyncProgress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}

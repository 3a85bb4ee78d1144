using System.CommandLine;
using PmemService.Client;

namespace PmemCtl;

/// <summary>The command tree of one invocation (options are per instance: symbols are not thread-safe to share).</summary>
internal sealed partial class CommandTree
{
    private readonly Action<PmemClientOptions>? _configureClient;
    private readonly Interrupts _interrupts;

    public CommandTree(Action<PmemClientOptions>? configureClient, Interrupts interrupts)
    {
        _configureClient = configureClient;
        _interrupts = interrupts;
    }

    private readonly Option<string?> _address = new("--address", "-a")
    {
        Description = $"PmemService address: unix:///path.sock, unix:relative.sock, http://host:port or https://host:port " +
                      $"[default: ${PmemCtlApp.AddressVariable}, else unix:{PmemCtlApp.DefaultSocketPath} if it exists, else {PmemCtlApp.DefaultTcpAddress}]",
        Recursive = true,
    };

    private readonly Option<string> _output = new("--output", "-o")
    {
        Description = "Output format",
        DefaultValueFactory = _ => "text",
        Recursive = true,
    };

    private readonly Option<bool> _noProgress = new("--no-progress")
    {
        Description = "Never show progress bars (they are shown on stderr only when it is a terminal and --output is text)",
        Recursive = true,
    };

    private readonly Option<bool> _progressOption = new("--progress")
    {
        Description = "Show progress bars even when stderr is not a terminal",
        Recursive = true,
    };

    private readonly Option<double?> _timeout = new("--timeout")
    {
        Description = "Deadline of each unary call in seconds [default: 30]",
        Recursive = true,
    };

    public RootCommand BuildRootCommand()
    {
        _output.AcceptOnlyFromAmong("text", "json");
        var root = new RootCommand("pmemctl: manage PmemService regions and move data in and out of persistent memory.")
        {
            _address,
            _output,
            _noProgress,
            _progressOption,
            _timeout,
        };
        AddSecurityOptions(root);

        root.Add(BuildRegionsCommand());
        root.Add(BuildCreateCommand());
        root.Add(BuildMapCommand());
        root.Add(BuildUnmapCommand());
        root.Add(BuildRmCommand());
        root.Add(BuildPutCommand());
        root.Add(BuildGetCommand());
        root.Add(BuildWriteCommand());
        root.Add(BuildReadCommand());
        root.Add(BuildPersistCommand());
        root.Add(BuildCasCommand());
        root.Add(BuildFetchAddCommand());
        root.Add(BuildAtomicWriteCommand());
        root.Add(BuildWatchCommand());
        root.Add(BuildHealthCommand());
        root.Add(BuildBenchCommand());
        root.Add(BuildDirectCommand());
        root.Add(BuildAccessCommand());
        return root;
    }

    /// <summary>Wires a handler: builds the context from the global options, maps failures to exit codes.</summary>
    private void SetHandler(Command command, Func<CliContext, ParseResult, Task<int>> handler, Option<string>? chunkSizeOption = null)
    {
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var stdout = parseResult.InvocationConfiguration.Output;
            var stderr = parseResult.InvocationConfiguration.Error;
            CliContext? context = null;
            try
            {
                var format = parseResult.GetValue(_output) == "json" ? OutputFormat.Json : OutputFormat.Text;
                var address = parseResult.GetValue(_address) ?? PmemCtlApp.ResolveDefaultAddress();
                var terminal = ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected;
                var progress = !parseResult.GetValue(_noProgress) && format == OutputFormat.Text &&
                               (terminal || parseResult.GetValue(_progressOption));
                TimeSpan? timeout = parseResult.GetValue(_timeout) is { } seconds
                    ? seconds > 0 ? TimeSpan.FromSeconds(seconds) : throw new UsageException("--timeout must be positive")
                    : null;
                int? chunkSize = null;
                if (chunkSizeOption is not null && parseResult.GetValue(chunkSizeOption) is { } chunkText)
                {
                    var chunk = Sizes.Parse(chunkText, "chunk size");
                    if (chunk is < 1 or > PmemClientOptions.MaxChunkSize)
                    {
                        throw new UsageException($"--chunk-size must be between 1 B and {Sizes.Format(PmemClientOptions.MaxChunkSize)}");
                    }

                    chunkSize = (int)chunk;
                }

                context = new CliContext(stdout, stderr, address, format, progress, timeout, chunkSize, ClientConfiguration(parseResult), cancellationToken)
                {
                    Interrupts = _interrupts,
                };
                return await handler(context, parseResult).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                var (code, reason, message) = PmemCtlApp.Classify(ex, context, cancellationToken);
                await stderr.WriteLineAsync($"error: {reason}: {PmemCtlApp.OneLine(message)}").ConfigureAwait(false);
                return code;
            }
            finally
            {
                context?.Dispose();
            }
        });
    }

}

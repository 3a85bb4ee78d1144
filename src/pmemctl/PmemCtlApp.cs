using System.CommandLine;
using System.CommandLine.Help;
using System.Globalization;
using System.Runtime.InteropServices;
using PmemService.Client;

namespace PmemCtl;

/// <summary>
/// The pmemctl command line, runnable in-process: <see cref="RunAsync"/> parses the arguments,
/// runs the command against PmemService and returns the exit code (see <see cref="ExitCodes"/>).
/// </summary>
public static partial class PmemCtlApp
{
    /// <summary>Environment variable holding the default address.</summary>
    public const string AddressVariable = "PMEM_ADDRESS";

    /// <summary>Socket used by default when it exists (relative to the working directory).</summary>
    public const string DefaultSocketPath = "data/pmem.sock";

    /// <summary>Address used by default when neither <c>--address</c>, PMEM_ADDRESS nor the default socket exist.</summary>
    public const string DefaultTcpAddress = "http://127.0.0.1:5001";

    private static readonly AsyncLocal<Action<PmemClientOptions>?> s_configureClient = new();

    /// <summary>Runs pmemctl with <paramref name="args"/>, writing to the given writers.</summary>
    /// <param name="args">Command-line arguments (without the program name).</param>
    /// <param name="stdout">Results (text or JSON).</param>
    /// <param name="stderr">Errors (one line: <c>error: REASON: message</c>) and progress bars.</param>
    /// <param name="cancellationToken">Cancels the running command (exit code 130).</param>
    /// <returns>The exit code (see <see cref="ExitCodes"/>).</returns>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);

        var interrupts = new Interrupts(cancellationToken);
        var root = new CommandTree(s_configureClient.Value, interrupts).BuildRootCommand();
        var parseResult = root.Parse(args);
        if (parseResult.Errors.Count > 0 && parseResult.Action is not HelpAction)
        {
            // One error, like other CLIs: "pmemctl frob" is an unknown command, not also a missing one.
            // An unrecognized token explains the other errors ("frob" is also why no command was given).
            var first = parseResult.UnmatchedTokens.Count > 0
                ? parseResult.Errors.FirstOrDefault(e => e.Message.Contains(parseResult.UnmatchedTokens[0], StringComparison.Ordinal)) ?? parseResult.Errors[0]
                : parseResult.Errors[0];
            var error = OneLine(first.Message);
            var command = parseResult.CommandResult.Command;
            var help = command is RootCommand ? "pmemctl --help" : $"pmemctl {string.Join(' ', CommandPath(parseResult))} --help";
            await stderr.WriteLineAsync($"error: USAGE: {error} (see '{help}')").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        var invocation = new InvocationConfiguration
        {
            Output = stdout,
            Error = stderr,
            EnableDefaultExceptionHandler = false,
            // Ctrl+C is handled by Interrupts (the real process only; in-process callers use the token).
            ProcessTerminationTimeout = null,
        };
        using var sigint = ReferenceEquals(stdout, Console.Out)
            ? PosixSignalRegistration.Create(PosixSignal.SIGINT, context =>
            {
                context.Cancel = true; // the command ends itself and reports what it did
                interrupts.Interrupt();
            })
            : null;
        try
        {
            return await parseResult.InvokeAsync(invocation, interrupts.Token).ConfigureAwait(false);
        }
        finally
        {
            interrupts.Dispose();
        }
    }

    private static IEnumerable<string> CommandPath(ParseResult parseResult)
    {
        var names = new Stack<string>();
        for (var result = parseResult.CommandResult; result is not null && result.Command is not RootCommand; result = result.Parent as System.CommandLine.Parsing.CommandResult)
        {
            names.Push(result.Command.Name);
        }

        return names;
    }

    /// <summary>Test seam: like <see cref="RunAsync"/>, with extra client configuration (e.g. an HTTP handler).</summary>
    internal static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, Action<PmemClientOptions> configureClient, CancellationToken cancellationToken = default)
    {
        s_configureClient.Value = configureClient;
        try
        {
            return await RunAsync(args, stdout, stderr, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            s_configureClient.Value = null;
        }
    }

    /// <summary>Resolves the default address: PMEM_ADDRESS, else the default socket if it exists, else TCP.</summary>
    public static string ResolveDefaultAddress()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(AddressVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            return fromEnvironment;
        }

        return File.Exists(DefaultSocketPath) ? "unix:" + DefaultSocketPath : DefaultTcpAddress;
    }

    /// <summary>Maps a failure to (exit code, reason, message).</summary>
    internal static (int Code, string Reason, string Message) Classify(Exception exception, CliContext? context, CancellationToken cancellationToken)
    {
        switch (exception)
        {
            case UsageException usage:
                return (ExitCodes.Usage, "USAGE", usage.Message);
            case PmemUploadStoppedException stopped:
                return (ExitCodes.Cancelled, "CANCELLED", "interrupted: " + stopped.Message);
            case PmemException { Reason: "REGION_NOT_MAPPED" } notMapped:
                var region = notMapped.Metadata.TryGetValue("region", out var r) ? r : "NAME";
                return (ExitCode(notMapped.Kind), "REGION_NOT_MAPPED",
                    $"region '{region}' is not mapped: run 'pmemctl map {region}' first (data commands need a mapping reference; it stays until 'pmemctl unmap {region}')");
            case PmemException pmem:
                var message = pmem.Message;
                if (pmem.Kind == PmemErrorKind.Unavailable && pmem.Reason is null)
                {
                    message = $"cannot reach PmemService at {context?.DisplayAddress}: {TransportCause(pmem) ?? message}";
                }

                return (ExitCode(pmem.Kind), pmem.ReasonOrCode, message);
            case OperationCanceledException when cancellationToken.IsCancellationRequested:
                return (ExitCodes.Cancelled, "CANCELLED", "interrupted");
            case FileNotFoundException or DirectoryNotFoundException:
                return (ExitCodes.NotFound, "FILE_NOT_FOUND", exception.Message);
            case UnauthorizedAccessException:
                return (ExitCodes.PermissionDenied, "ACCESS_DENIED", exception.Message);
            case IOException:
                return (ExitCodes.Failure, "IO_ERROR", exception.Message);
            default:
                return (ExitCodes.Failure, "INTERNAL", $"{exception.GetType().Name}: {exception.Message}");
        }
    }

    /// <summary>Exit code of a <see cref="PmemErrorKind"/>.</summary>
    public static int ExitCode(PmemErrorKind kind) => kind switch
    {
        PmemErrorKind.RegionNotFound => ExitCodes.NotFound,
        PmemErrorKind.InvalidArgument or PmemErrorKind.OutOfRange => ExitCodes.InvalidArgument,
        PmemErrorKind.FailedPrecondition or PmemErrorKind.AlreadyExists or PmemErrorKind.Aborted => ExitCodes.Conflict,
        PmemErrorKind.Unavailable or PmemErrorKind.DeadlineExceeded => ExitCodes.Unavailable,
        PmemErrorKind.DataLoss or PmemErrorKind.ChecksumMismatch => ExitCodes.DataIntegrity,
        PmemErrorKind.ResourceExhausted => ExitCodes.ResourceExhausted,
        PmemErrorKind.PermissionDenied => ExitCodes.PermissionDenied,
        _ => ExitCodes.Failure,
    };

    /// <summary>The most specific transport error behind an UNAVAILABLE call (socket missing, connection refused, ...).</summary>
    private static string? TransportCause(PmemException exception)
    {
        var debug = (exception.InnerException as Grpc.Core.RpcException)?.Status.DebugException;
        string? cause = null;
        for (var e = debug; e is not null; e = e.InnerException)
        {
            if (e is IOException or System.Net.Sockets.SocketException)
            {
                cause = e.Message;
                break;
            }

            cause = e.Message;
        }

        return cause;
    }

    internal static string OneLine(string text) =>
        text.ReplaceLineEndings(" ").Trim();

    internal static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

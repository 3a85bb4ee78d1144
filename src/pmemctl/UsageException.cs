namespace PmemCtl;

/// <summary>A command-line argument is malformed; reported as <c>error: USAGE: ...</c> with exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

using Pmem2.Oracle;

namespace Pmem2.NativeTests.Infrastructure;

/// <summary>
/// Sets PMEM2_FORCE_GRANULARITY for both sides (native getenv and the managed environment) and restores
/// the previous value when disposed. A null value removes the variable.
/// </summary>
internal sealed class ForceGranularity : IDisposable
{
    public const string Variable = "PMEM2_FORCE_GRANULARITY";

    private readonly string? _previous;

    private ForceGranularity(string? value)
    {
        _previous = NativePmem2.GetNativeEnvironment(Variable);
        NativePmem2.SetNativeEnvironment(Variable, value);
    }

    public static ForceGranularity Set(string? value) => new(value);

    /// <summary>Changes the value again while the scope is open.</summary>
    public static void Change(string? value) => NativePmem2.SetNativeEnvironment(Variable, value);

    public void Dispose() => NativePmem2.SetNativeEnvironment(Variable, _previous);
}

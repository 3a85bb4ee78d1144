using PmemService;
using Serilog;
using Serilog.Formatting.Compact;

// "PmemService health [--address URL] [--service NAME]": a probe for Docker/Helm healthchecks.
if (args.Length > 0 && args[0] == "health")
{
    return await HealthCommand.RunAsync(args[1..]);
}

// Two-stage Serilog bootstrap: a console logger until the host's configuration is loaded. It has the
// host's format (compact JSON outside Development), so even a fatal start-up error is one JSON line
// in Production, where log collectors parse every line.
var environment = Environment.GetEnvironmentVariable("ASPNETCORE_ENVIRONMENT")
                  ?? Environment.GetEnvironmentVariable("DOTNET_ENVIRONMENT")
                  ?? Environments.Production;
var bootstrap = new LoggerConfiguration();
if (string.Equals(environment, Environments.Development, StringComparison.OrdinalIgnoreCase))
{
    bootstrap.WriteTo.Console();
}
else
{
    bootstrap.WriteTo.Console(new RenderedCompactJsonFormatter());
}

Log.Logger = bootstrap.CreateBootstrapLogger();
try
{
    // appsettings*.json ship next to the binary; the working directory is only for data paths.
    var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
    builder.Services.AddPmem(builder.Configuration);

    var app = builder.Build();
    app.UsePmemRequestLogging();
    app.MapPmemServices();
    await app.RunAsync();
    return 0;
}
catch (Exception e) when (e is not HostAbortedException)
{
    Log.Fatal(e, "PmemService failed to start or stopped unexpectedly: {Reason}", e.Message);
    return 1;
}
finally
{
    await Log.CloseAndFlushAsync();
}

using PmemService;
using Serilog;

// "PmemService health [--address URL] [--service NAME]": a probe for Docker/Helm healthchecks.
if (args.Length > 0 && args[0] == "health")
{
    return await HealthCommand.RunAsync(args[1..]);
}

// Two-stage Serilog bootstrap: a console logger until the host's configuration is loaded.
Log.Logger = new LoggerConfiguration().WriteTo.Console().CreateBootstrapLogger();
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

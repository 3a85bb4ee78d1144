// pmemctl: the command line for PmemService. All logic lives in PmemCtlApp so tests can run it in-process.
return await PmemCtl.PmemCtlApp.RunAsync(args, Console.Out, Console.Error);

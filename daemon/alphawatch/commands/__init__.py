"""One module per subcommand; each imports heavy libraries only inside main()."""

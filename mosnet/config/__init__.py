"""The command line, as bytes, to frozen configuration.

Owns splitting the kernel line the way the kernel does, the registry of every
parameter mosnet-init reads (owner, form, repeatable, yes/no words, bakeable),
the baked line under the kernel's, every network parameter's parser (``mos*=``,
``ip=``, ``nameserver=``), the console level the kernel reads (``quiet``,
``loglevel=``) and the frozen :class:`NetConfig` the rest of mosnet works from.

Imports: base
"""

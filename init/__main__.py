"""mosnet-init: PID 1 of the mosnet initramfs (compiled by Nuitka)."""

from init import boot

if __name__ == "__main__":
    boot.main()

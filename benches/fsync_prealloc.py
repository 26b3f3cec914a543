import os, time, sys
def run(prealloc, size, n, path="/work/fsync-test.bin"):
    if os.path.exists(path): os.remove(path)
    fd = os.open(path, os.O_RDWR|os.O_CREAT, 0o644)
    if prealloc == "zeros":
        os.write(fd, b"\0"*(n*size+4096)); os.fsync(fd); os.lseek(fd,0,0)
    buf = b"x"*size
    lat=[]
    t0=time.perf_counter()
    for i in range(n):
        t=time.perf_counter(); os.write(fd, buf); os.fdatasync(fd); lat.append(time.perf_counter()-t)
    tot=time.perf_counter()-t0
    os.close(fd); os.remove(path)
    lat.sort()
    return f"{prealloc:7s} {size:7d}B p50 {lat[n//2]*1e3:.3f} p90 {lat[int(n*.9)]*1e3:.3f} mean {tot/n*1e3:.3f} ms"
for rep in range(2):
  for size,n in [(6000,3000),(400000,300)]:
    for p in ["append","zeros"]:
        print(run(p,size,n), flush=True)

# Small helpers so every target is declared the same way.

# Warnings we keep at zero in our own code.
function(oodt_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
endfunction()

# oodt_use_torch_pch(<target>): reuse the one precompiled LibTorch header built for oodt_core,
# so the heavy headers are parsed once per build, not once per translation unit.
function(oodt_use_torch_pch target)
  if(OODT_USE_PCH)
    target_precompile_headers(${target} REUSE_FROM oodt_core)
  endif()
endfunction()

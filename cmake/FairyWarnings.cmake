# fairy_warnings(target): the warning set for our own code. Third-party headers come in as SYSTEM
# includes through their imported targets, so their warnings stay out of our builds.
function(fairy_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-unused-parameter)
endfunction()

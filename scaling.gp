set terminal pngcairo noenhanced size 1100,500
set output './scaling.png'
set multiplot layout 1,2 title 'vmm KSM at max rate, N VMs x pattern mb=8 zero=25 shared=50'
set logscale x 2
set xlabel 'VMs'
set grid
set key top left
set datafile missing '-1.0000'
set title 'dedup ratio (guest pages / host pages)'
plot './scaling.dat' using 1:2 with linespoints lw 2 title 'vmm, reached', \
     './scaling.dat' using 1:3 with linespoints dt 2 title 'ideal for the content'
set title 'scanner CPU seconds to 99% of the ideal'
set logscale y 10
plot './scaling.dat' using 1:5 with linespoints lw 2 title 'vmm scanner', \
     './scaling.dat' using 1:($6 > 0 ? $6 : 1/0) with linespoints dt 2 title 'Linux ksmd, same content in a host process'
unset multiplot

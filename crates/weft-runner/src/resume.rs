use weft_catalog::Catalog;
use weft_pipeline::Pipeline;

/// The nodes to pass to `--from-nodes` to finish a run that stopped early.
///
/// `done[i]` tells whether node `i` of `pipeline.nodes()` completed. Every
/// unfinished node must run again; so must every finished node whose output
/// lived only in memory (it is gone with the failed run) and is needed by a
/// node that runs again. The answer is the set of such nodes that do not
/// depend on another node of the set, sorted by name.
pub fn resume_nodes(pipeline: &Pipeline, catalog: &Catalog, done: &[bool]) -> Vec<String> {
    let nodes = pipeline.nodes();
    let parents = pipeline.parents();
    let free_inputs = pipeline.inputs();
    let mut rerun: Vec<bool> = done.iter().map(|d| !d).collect();
    let mut stack: Vec<usize> = (0..nodes.len()).filter(|&i| rerun[i]).collect();
    while let Some(i) = stack.pop() {
        for input in nodes[i].inputs() {
            if free_inputs.contains(input) || !catalog.is_memory(input) {
                continue;
            }
            for &p in &parents[i] {
                if !rerun[p] && nodes[p].outputs().iter().any(|o| o == input) {
                    rerun[p] = true;
                    stack.push(p);
                }
            }
        }
    }
    let mut starts: Vec<String> = (0..nodes.len())
        .filter(|&i| rerun[i] && !parents[i].iter().any(|&p| rerun[p]))
        .map(|i| nodes[i].name().to_string())
        .collect();
    starts.sort();
    starts
}

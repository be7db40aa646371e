use std::sync::Mutex;

use weft_pipeline::{Data, DataType};

use crate::{CatalogError, Dataset, DatasetInfo, LoadType};

/// Keeps data in memory. Every reader gets the same `Arc`: nothing is copied.
pub struct MemoryDataset {
    name: String,
    data: Mutex<Option<Data>>,
    load_type: LoadType,
}

impl MemoryDataset {
    /// An empty memory dataset.
    pub fn new(name: impl Into<String>) -> Self {
        MemoryDataset {
            name: name.into(),
            data: Mutex::new(None),
            load_type: LoadType::Any,
        }
    }

    /// A memory dataset holding `data`.
    pub fn with_data(name: impl Into<String>, data: Data) -> Self {
        MemoryDataset {
            name: name.into(),
            data: Mutex::new(Some(data)),
            load_type: LoadType::Any,
        }
    }

    /// A memory dataset holding parameters (a JSON value nodes may decode).
    pub fn parameters(name: impl Into<String>, value: serde_json::Value) -> Self {
        MemoryDataset {
            name: name.into(),
            data: Mutex::new(Some(Data::new(value))),
            load_type: LoadType::Exact(DataType::of::<serde_json::Value>()),
        }
    }
}

impl Dataset for MemoryDataset {
    fn load(&self, _request: Option<&DataType>) -> Result<Data, CatalogError> {
        self.data
            .lock()
            .expect("memory dataset lock")
            .clone()
            .ok_or_else(|| CatalogError::NotSaved {
                dataset: self.name.clone(),
            })
    }

    fn save(&self, data: &Data) -> Result<(), CatalogError> {
        *self.data.lock().expect("memory dataset lock") = Some(data.clone());
        Ok(())
    }

    fn exists(&self) -> Result<bool, CatalogError> {
        Ok(self.data.lock().expect("memory dataset lock").is_some())
    }

    fn release(&self) {
        self.data.lock().expect("memory dataset lock").take();
    }

    fn describe(&self) -> DatasetInfo {
        DatasetInfo {
            name: self.name.clone(),
            type_name: "MemoryDataset".into(),
            filepath: None,
            versioned: false,
            pattern: None,
        }
    }

    fn load_type(&self) -> LoadType {
        self.load_type
    }

    fn is_memory(&self) -> bool {
        true
    }

    fn unavailable(&self) -> Option<crate::Unavailable> {
        if self
            .data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
        {
            return None;
        }
        Some(crate::Unavailable {
            dataset: self.name.clone(),
            path: None,
            reason: "a memory dataset that holds no data (nothing saves it before this run)".to_string(),
        })
    }
}
